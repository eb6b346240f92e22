package config

import (
	"net/url"
	"time"

	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/elastic"
)

// ElasticOptions configures an "elastic" sink (SPEC §4, §5).
type ElasticOptions struct {
	// Addresses are the Elasticsearch URLs, e.g. http://es:9200. Required.
	Addresses []string
	// Index is the index template, e.g. "helpdesk-{{.Type}}". Required.
	Index string
	// IndexTemplate is Index parsed.
	IndexTemplate *route.Template
	// Mode is elastic.Modes(): events (default: one document per event) or
	// latest (one document per stream, the merge of its events' data).
	Mode elastic.Mode
	// IndexSettings is the path of a JSON file with the settings and
	// mappings of the indices cdc creates; "" lets Elasticsearch
	// auto-create them. Package assemble reads it.
	IndexSettings string
	// Username and Password are basic-auth credentials; APIKey is an
	// encoded API key. Passwords and keys are never printed.
	Username, Password, APIKey string
	// Workers is the number of bulk requests in flight; 0 means the sink's
	// default (2).
	Workers int
	// FlushBytes is the size of one bulk request; 0 means the sink's
	// default (5 MiB).
	FlushBytes int
	// RequestTimeout bounds one request; 0 means the sink's default (30s).
	RequestTimeout time.Duration
	// TLS is set when the tls key is present.
	TLS *TLSOptions
}

// Kind returns "elastic".
func (*ElasticOptions) Kind() string { return "elastic" }

// elasticKind decodes the keys of an elastic sink.
var elasticKind = sinkKind{
	name: "elastic",
	keys: []string{"addresses", "index", "mode", "index_settings", "username", "password", "api_key",
		"workers", "flush_bytes", "request_timeout", "tls"},
	decode: func(m *mapping) SinkOptions {
		o := &ElasticOptions{Mode: elastic.Modes()[0]}
		o.Addresses = m.requiredStrs("addresses", httpURL, "address")
		o.Index, o.IndexTemplate, _ = m.template("index", true)
		if v, ok := oneOf(m, "mode", elastic.Modes()...); ok {
			o.Mode = v
		}
		o.IndexSettings, _ = m.str("index_settings", false, nil)
		o.Username, _ = m.str("username", false, nil)
		o.Password, _ = m.str("password", false, nil)
		o.APIKey, _ = m.str("api_key", false, nil)
		if o.Password != "" && o.Username == "" {
			m.d.addf(m.valueLine("password"), join(m.path, "password"), "password without username")
		}
		if o.Username != "" && o.Password == "" {
			m.d.addf(m.valueLine("username"), join(m.path, "username"), "username without password")
		}
		if o.APIKey != "" && o.Username != "" {
			m.d.addf(m.valueLine("api_key"), join(m.path, "api_key"), "use either api_key or username and password, not both")
		}
		o.Workers, _ = m.positiveInt("workers")
		o.FlushBytes, _ = m.size("flush_bytes")
		o.RequestTimeout, _ = m.duration("request_timeout")
		if _, ok := m.get("tls"); ok {
			o.TLS = decodeTLS(m.child("tls"))
		}
		return o
	},
}

// httpURL checks an Elasticsearch address: an http or https URL with a
// host. The message never repeats credentials written into the URL.
func httpURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "want an http:// or https:// URL with a host, got " + quote(s)
	}
	if u.User != nil {
		return "put credentials in username/password or api_key, not in the URL"
	}
	return ""
}
