package elastic

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/martencdc/cdc/route"
)

// Mode says what documents the sink writes.
type Mode string

// Modes.
const (
	// ModeEvents writes one document per event: the JSON envelope, _id the
	// event id, external version the seq_id. The default.
	ModeEvents Mode = "events"
	// ModeLatest writes one document per stream: the merge of its events'
	// data, _id the stream id, external version the stream version.
	ModeLatest Mode = "latest"
)

// Modes returns every Mode, the default (ModeEvents) first: the spellings
// the configuration accepts.
func Modes() []Mode { return []Mode{ModeEvents, ModeLatest} }

// Defaults of Config.
const (
	// DefaultWorkers is the default of Config.Workers.
	DefaultWorkers = 2
	// DefaultFlushBytes is the default of Config.FlushBytes: 5 MiB.
	DefaultFlushBytes = 5 << 20
	// DefaultRequestTimeout is the default of Config.RequestTimeout.
	DefaultRequestTimeout = 30 * time.Second
)

// minFlushBytes is the smallest Config.FlushBytes accepted.
const minFlushBytes = 1024

// Config configures an Elasticsearch sink. Only Addresses and Index are
// required.
type Config struct {
	// Addresses are the URLs of the Elasticsearch nodes, e.g.
	// "http://es:9200" or "https://es:9200"; requests go to them in turn.
	// They may not hold credentials: set Username and Password or APIKey.
	// Required.
	Addresses []string
	// Index is the index of each event, rendered per event (see package
	// route), e.g. "helpdesk-{{.Type}}". In ModeLatest it should not depend
	// on anything but the stream (not on the type): each index gets its own
	// document of the stream, merged from the events routed to it. Required.
	Index *route.Template
	// Mode is what documents are written. Default ModeEvents.
	Mode Mode
	// TenantPrefix makes document ids "<tenant_id>:<id>" (the event id in
	// ModeEvents, the stream id in ModeLatest). Set it when the store uses
	// conjoined tenancy: ids, and seq_ids under tenant partitioning, are only
	// unique per tenant. Default false: the id alone.
	TenantPrefix bool
	// IndexSettings is the body of the PUT /<index> request that creates an
	// index the sink is about to write to for the first time while it does
	// not exist: a JSON object of "settings", "mappings" and "aliases".
	// Default nil: the sink creates no index, Elasticsearch creates it on
	// the first write (with its index templates, if any).
	IndexSettings json.RawMessage
	// Username and Password authenticate with HTTP basic auth. Both or
	// neither; not with APIKey. Neither appears in any error or log.
	Username, Password string
	// APIKey is an API key as Elasticsearch returns it from
	// POST /_security/api_key: the "encoded" field, base64 of "id:key".
	// Default "": none.
	APIKey string
	// TLS configures https connections (see package internal/tlsfile).
	// Default nil: the system's roots verify the servers of https addresses.
	// Setting it with http addresses is an error.
	TLS *tls.Config
	// Workers is the number of bulk requests in flight at once. Default
	// DefaultWorkers (2).
	Workers int
	// FlushBytes is the size at which a worker sends its bulk request, in
	// bytes; a batch bigger than Workers*FlushBytes takes several requests
	// per worker. Default DefaultFlushBytes (5 MiB).
	FlushBytes int
	// RequestTimeout bounds each request to Elasticsearch, the client's
	// retries of it included. Default DefaultRequestTimeout (30s).
	RequestTimeout time.Duration
	// Logger receives the sink's logs: indices created (Info), rounds of
	// items sent again after a 429 (Debug). The sink adds
	// component; the caller's logger should carry the pipeline and the
	// sink (package assemble's does). Default: none.
	Logger *slog.Logger
}

// Validate checks the configuration. Zero values stand for the defaults.
func (c *Config) Validate() error {
	if len(c.Addresses) == 0 {
		return errors.New("elastic sink: no addresses")
	}
	https := false
	for i, a := range c.Addresses {
		u, err := checkAddress(a)
		if err != nil {
			return fmt.Errorf("elastic sink: addresses[%d]: %w", i, err)
		}
		https = https || u.Scheme == "https"
	}
	if c.TLS != nil && !https {
		return errors.New("elastic sink: tls is set but every address is http://: use https:// addresses")
	}
	if c.Index == nil {
		return errors.New("elastic sink: no index template")
	}
	if name, ok := c.Index.Constant(); ok {
		if err := checkIndex(name); err != nil {
			return fmt.Errorf("elastic sink: index: %w", err)
		}
	}
	if c.Mode != "" && !slices.Contains(Modes(), c.Mode) {
		return fmt.Errorf("elastic sink: mode %q: want events or latest", c.Mode)
	}
	if c.IndexSettings != nil && !isObject(c.IndexSettings) {
		return errors.New("elastic sink: index settings: not a JSON object (want {\"settings\": ..., \"mappings\": ...})")
	}
	switch {
	case c.Username != "" && c.Password == "":
		return errors.New("elastic sink: username without a password")
	case c.Username == "" && c.Password != "":
		return errors.New("elastic sink: password without a username")
	case c.APIKey != "" && c.Username != "":
		return errors.New("elastic sink: both username/password and api_key are set: choose one")
	case c.Workers < 0:
		return fmt.Errorf("elastic sink: workers %d is negative", c.Workers)
	case c.FlushBytes != 0 && c.FlushBytes < minFlushBytes:
		return fmt.Errorf("elastic sink: flush_bytes %d: want at least %d", c.FlushBytes, minFlushBytes)
	case c.RequestTimeout < 0:
		return fmt.Errorf("elastic sink: request_timeout %s is negative", c.RequestTimeout)
	}
	return nil
}

// checkAddress accepts http and https URLs with a host and without
// credentials. It never quotes the address, in case it holds a password.
func checkAddress(a string) (*url.URL, error) {
	u, err := url.Parse(a)
	switch {
	case a == "":
		return nil, errors.New("empty address")
	case err != nil:
		return nil, errors.New("not a URL (want e.g. http://es:9200)")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("not an http:// or https:// URL")
	case u.Host == "":
		return nil, errors.New("no host (want e.g. http://es:9200)")
	case u.User != nil:
		return nil, errors.New("credentials in the address: set username and password, or api_key, instead")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("a query or fragment in the address")
	}
	return u, nil
}

// isObject reports whether raw is a JSON object.
func isObject(raw []byte) bool {
	raw = trimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}

// Sink writes events to Elasticsearch. Its methods are safe for concurrent
// use; Write calls are serialised.
type Sink struct {
	es           *elasticsearch.Client
	transport    *http.Transport
	index        *route.Template
	mode         Mode
	tenantPrefix bool
	settings     []byte // nil: create no index
	workers      int
	flushBytes   int
	timeout      time.Duration
	addrs        string // for messages: "http://a:9200, http://b:9200"
	auth         string // for messages: `as user "cdc"`, "with an API key", ""
	log          *slog.Logger

	sem    chan struct{} // held by Write and Close
	closed atomic.Bool

	imu   sync.Mutex
	known map[string]bool // indices known to exist; only with settings

	// Retries of items refused with 429, between rounds (see write.go).
	itemBackoff [2]time.Duration // first and longest delay
	maxRounds   int
}

// Retries of whole requests by the client (429, 502, 503, 504, and
// connection errors): up to maxRetries more attempts after
// retryBase, 2*retryBase, 4*retryBase...
const (
	maxRetries = 3
	retryBase  = 100 * time.Millisecond
	retryMax   = 2 * time.Second
)

// Rounds of items refused with 429: up to defaultMaxRounds rounds, the
// delay between them doubling from itemBackoffMin to itemBackoffMax.
const (
	defaultMaxRounds = 10
	itemBackoffMin   = 100 * time.Millisecond
	itemBackoffMax   = 5 * time.Second
)

// errClosed is returned by Write after Close.
var errClosed = errors.New("elastic sink is closed")

// New returns an Elasticsearch sink. It validates cfg, starts no goroutine
// and connects to nothing: the first Write, Check or Prepare does.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{
		index:        cfg.Index,
		mode:         cfg.Mode,
		tenantPrefix: cfg.TenantPrefix,
		workers:      cfg.Workers,
		flushBytes:   cfg.FlushBytes,
		timeout:      cfg.RequestTimeout,
		addrs:        strings.Join(cfg.Addresses, ", "),
		log:          cfg.Logger,
		sem:          make(chan struct{}, 1),
		known:        map[string]bool{},
		itemBackoff:  [2]time.Duration{itemBackoffMin, itemBackoffMax},
		maxRounds:    defaultMaxRounds,
	}
	if cfg.IndexSettings != nil {
		s.settings = append([]byte(nil), trimSpace(cfg.IndexSettings)...)
	}
	if s.mode == "" {
		s.mode = ModeEvents
	}
	if s.workers == 0 {
		s.workers = DefaultWorkers
	}
	if s.flushBytes == 0 {
		s.flushBytes = DefaultFlushBytes
	}
	if s.timeout == 0 {
		s.timeout = DefaultRequestTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "elastic")
	switch {
	case cfg.APIKey != "":
		s.auth = "with an API key"
	case cfg.Username != "":
		s.auth = fmt.Sprintf("as user %q", cfg.Username)
	}

	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.transport.MaxIdleConnsPerHost = max(s.workers+2, http.DefaultMaxIdleConnsPerHost)
	if cfg.TLS != nil {
		s.transport.TLSClientConfig = cfg.TLS.Clone()
	}
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:     cfg.Addresses,
		Username:      cfg.Username,
		Password:      cfg.Password,
		APIKey:        cfg.APIKey,
		Transport:     s.transport,
		RetryOnStatus: []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		MaxRetries:    maxRetries,
		RetryBackoff:  backoff,
	})
	if err != nil {
		// The client's errors quote no credentials; Validate caught
		// malformed addresses already.
		return nil, fmt.Errorf("elastic sink: %w", err)
	}
	s.es = es
	return s, nil
}

// backoff is the client's delay before its attempt-th retry of a request.
func backoff(attempt int) time.Duration {
	d := retryBase << (attempt - 1)
	if d <= 0 || d > retryMax {
		return retryMax
	}
	return d
}

// Close releases the connections. A Write in progress is waited for until
// ctx ends. Close is idempotent; Write fails after it.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		// The Write in progress fails once the client is closed.
		_ = s.es.Close(context.WithoutCancel(ctx))
		s.transport.CloseIdleConnections()
		return fmt.Errorf("close elastic sink: a write is still in progress: %w", ctx.Err())
	}
	err := s.es.Close(ctx)
	s.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close elastic sink: %w", err)
	}
	return nil
}

// acquire takes the right to write, or fails when ctx ends or the sink is
// closed; release gives it back.
func (s *Sink) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.closed.Load() {
		<-s.sem
		return errClosed
	}
	return nil
}

func (s *Sink) release() { <-s.sem }

// trimSpace trims JSON whitespace.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
