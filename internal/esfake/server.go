package esfake

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Server is a fake Elasticsearch 8.19 node serving the REST API over HTTP
// (or HTTPS) on a loopback port. It is safe for concurrent use.
type Server struct {
	ts          *httptest.Server
	useTLS      bool
	users       map[string]string // user -> password
	apiKeys     map[string]string // id -> key
	pipelines   map[string]bool
	clusterUUID string

	mu      sync.Mutex
	indices map[string]*index
	faults  faults
	stats   Stats
}

// Option configures a Server.
type Option func(*Server)

// WithBasicAuth makes the server require credentials and accept user with
// password over HTTP Basic authentication. It may be given more than once.
// Without WithBasicAuth and WithAPIKey, the server accepts anonymous
// requests (as a node with security disabled).
func WithBasicAuth(user, password string) Option {
	return func(s *Server) { s.users[user] = password }
}

// WithAPIKey makes the server require credentials and accept the API key
// id/key, sent as "Authorization: ApiKey base64(id:key)" (the encoded form
// go-elasticsearch's Config.APIKey takes). It may be given more than once.
func WithAPIKey(id, key string) Option {
	return func(s *Server) { s.apiKeys[id] = key }
}

// WithTLS serves HTTPS with a self-signed certificate for 127.0.0.1 and
// ::1; CACertPEM returns it. The default is plain HTTP.
func WithTLS() Option {
	return func(s *Server) { s.useTLS = true }
}

// WithPipelines declares ingest pipelines that exist (and leave documents
// unchanged). By default none exists, and a write naming a pipeline other
// than "_none" fails with "pipeline with id [x] does not exist", as on a
// cluster without it.
func WithPipelines(names ...string) Option {
	return func(s *Server) {
		for _, n := range names {
			s.pipelines[n] = true
		}
	}
}

// New starts a fake Elasticsearch node. Close it when done.
func New(opts ...Option) *Server {
	s := &Server{
		users:       map[string]string{},
		apiKeys:     map[string]string{},
		pipelines:   map[string]bool{},
		clusterUUID: newUUID(),
		indices:     map[string]*index{},
	}
	for _, o := range opts {
		o(s)
	}
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshakes that tests make fail on purpose
	if s.useTLS {
		s.ts.StartTLS()
	} else {
		s.ts.Start()
	}
	return s
}

// URL returns the node's base URL, such as http://127.0.0.1:40123.
func (s *Server) URL() string { return s.ts.URL }

// Close stops the server, closing open connections.
func (s *Server) Close() {
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// CACertPEM returns the PEM of the certificate a client must trust to reach
// a WithTLS server (the self-signed server certificate itself), or nil
// without WithTLS.
func (s *Server) CACertPEM() []byte {
	if !s.useTLS {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// CertFingerprint returns the hex SHA-256 fingerprint of a WithTLS server's
// certificate (the form go-elasticsearch's Config.CertificateFingerprint
// takes), or "" without WithTLS.
func (s *Server) CertFingerprint() string {
	if !s.useTLS {
		return ""
	}
	sum := sha256.Sum256(s.ts.Certificate().Raw)
	return hex.EncodeToString(sum[:])
}

// request is one HTTP request being served.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	segs   []string // unescaped path segments
	params url.Values
	body   []byte
}

func (q *request) param(name string) (string, bool) {
	v, ok := q.params[name]
	if !ok {
		return "", false
	}
	return v[0], true
}

// ServeHTTP serves the Elasticsearch REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.mu.Unlock()
	if id := r.Header.Get("X-Opaque-Id"); id != "" {
		w.Header().Set("X-Opaque-Id", id)
	}
	q := &request{w: w, r: r, params: r.URL.Query()}
	for _, seg := range strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/") {
		if seg == "" {
			continue
		}
		u, err := url.PathUnescape(seg)
		if err != nil {
			u = seg
		}
		q.segs = append(q.segs, u)
	}
	if e := s.authenticate(r); e != nil {
		s.mu.Lock()
		s.stats.Unauthorized++
		s.mu.Unlock()
		for _, h := range wwwAuthenticate {
			w.Header().Add("WWW-Authenticate", h)
		}
		s.writeError(q, e)
		return
	}
	body, e := readBody(r)
	if e != nil {
		s.writeError(q, e)
		return
	}
	q.body = body
	if len(body) > 0 && !supportedContentType(r.Header.Get("Content-Type")) {
		s.writeRaw(q, http.StatusNotAcceptable, obj{{"error", "Content-Type header [" + r.Header.Get("Content-Type") + "] is not supported"}, {"status", http.StatusNotAcceptable}})
		return
	}
	s.route(q)
}

// readBody reads the request body, decoding Content-Encoding gzip or deflate.
func readBody(r *http.Request) ([]byte, *esError) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, errParse("failed to read the request body: " + err.Error())
	}
	var dec io.ReadCloser
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, nil
	case "gzip", "x-gzip":
		dec, err = gzip.NewReader(bytes.NewReader(raw))
	case "deflate":
		dec, err = zlib.NewReader(bytes.NewReader(raw))
	default:
		return nil, errIllegalArgument("esfake: unsupported Content-Encoding [%s]", enc)
	}
	if err != nil {
		return nil, errIllegalArgument("esfake: cannot decode %s request body: %v", r.Header.Get("Content-Encoding"), err)
	}
	defer dec.Close()
	out, err := io.ReadAll(dec)
	if err != nil {
		return nil, errIllegalArgument("esfake: cannot decode %s request body: %v", r.Header.Get("Content-Encoding"), err)
	}
	return out, nil
}

// supportedContentType reports whether Elasticsearch reads a body of this
// media type as JSON (the fake does not read YAML, CBOR or Smile).
func supportedContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/x-ndjson":
		return true
	case "application/vnd.elasticsearch+json", "application/vnd.elasticsearch+x-ndjson":
		v := params["compatible-with"]
		return v == "" || v == "7" || v == "8"
	}
	return false
}

// authenticate checks the credentials of a request when security is on.
func (s *Server) authenticate(r *http.Request) *esError {
	if len(s.users) == 0 && len(s.apiKeys) == 0 {
		return nil
	}
	uri := r.URL.RequestURI()
	scheme, cred, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		if user, pass, ok := r.BasicAuth(); ok {
			if want, known := s.users[user]; known && want == pass {
				return nil
			}
			return errSecurity(fmt.Sprintf("unable to authenticate user [%s] for REST request [%s]", user, uri), "")
		}
	case "apikey":
		const reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
		raw, err := base64.StdEncoding.DecodeString(cred)
		id, key, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			return errSecurity(reason, "API key: invalid ApiKey value")
		}
		want, known := s.apiKeys[id]
		if !known {
			return errSecurity(reason, "API key: unable to find apikey with id "+id)
		}
		if want != key {
			return errSecurity(reason, "API key: invalid credentials for API key ["+id+"]")
		}
		return nil
	case "bearer":
		return errSecurity("unable to authenticate with provided credentials and anonymous access is not allowed for this request", "unsuccessful bearer token")
	}
	return errSecurity(fmt.Sprintf("missing authentication credentials for REST request [%s]", uri), "")
}

// writeRaw writes a JSON response, applying filter_path and pretty.
func (s *Server) writeRaw(q *request, status int, body any) {
	h := q.w.Header()
	h.Set("X-Elastic-Product", "Elasticsearch")
	ct := "application/json"
	if strings.Contains(q.r.Header.Get("Accept"), "vnd.elasticsearch+json") {
		ct = "application/vnd.elasticsearch+json;compatible-with=8"
	}
	h.Set("Content-Type", ct)
	if fp, ok := q.param("filter_path"); ok {
		if f := parseFilterPath(fp); f != nil {
			body = f.apply(body)
		}
	}
	pretty := false
	if v, ok := q.param("pretty"); ok && v != "false" {
		pretty = true
	}
	out := encodeJSON(body, pretty)
	h.Set("Content-Length", fmt.Sprint(len(out)))
	q.w.WriteHeader(status)
	if q.r.Method != http.MethodHead {
		_, _ = q.w.Write(out)
	}
}

// writeError writes an Elasticsearch error response.
func (s *Server) writeError(q *request, e *esError) {
	s.writeRaw(q, e.status, e.response())
}

// writeProxyError answers as a reverse proxy in front of Elasticsearch
// would, for the statuses Elasticsearch itself does not send (502, 504):
// plain text, no X-Elastic-Product header.
func writeProxyError(q *request, status int) {
	q.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	q.w.WriteHeader(status)
	_, _ = fmt.Fprintf(q.w, "%d %s\n", status, http.StatusText(status))
}

// commonParams are accepted by every endpoint.
var commonParams = []string{"pretty", "human", "error_trace", "filter_path", "source", "source_content_type"}

// checkParams rejects query parameters an endpoint does not know, as
// Elasticsearch does.
func checkParams(q *request, allowed ...string) *esError {
	known := map[string]bool{}
	for _, p := range append(allowed, commonParams...) {
		known[p] = true
	}
	var bad []string
	for p := range q.params {
		if !known[p] {
			bad = append(bad, p)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	path := q.r.URL.Path
	if len(bad) == 1 {
		return errIllegalArgument("request [%s] contains unrecognized parameter: [%s]", path, bad[0])
	}
	return errIllegalArgument("request [%s] contains unrecognized parameters: [%s]", path, strings.Join(bad, "], ["))
}

// noHandler is the answer to a path and method Elasticsearch has no
// handler for.
func (s *Server) noHandler(q *request) {
	s.writeRaw(q, http.StatusBadRequest, obj{{"error", fmt.Sprintf("no handler found for uri [%s] and method [%s]", q.r.URL.RequestURI(), q.r.Method)}, {"status", http.StatusBadRequest}})
}

// wrongMethod is the answer to a known path with a method it does not take.
func (s *Server) wrongMethod(q *request, allowed ...string) {
	s.writeRaw(q, http.StatusMethodNotAllowed, obj{{"error", fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", q.r.URL.RequestURI(), q.r.Method, strings.Join(allowed, ", "))}, {"status", http.StatusMethodNotAllowed}})
}

// route dispatches a request to its endpoint.
func (s *Server) route(q *request) {
	m := q.r.Method
	is := func(methods ...string) bool {
		for _, x := range methods {
			if m == x {
				return true
			}
		}
		s.wrongMethod(q, methods...)
		return false
	}
	segs := q.segs
	switch {
	case len(segs) == 0:
		if is(http.MethodGet, http.MethodHead) {
			s.handleInfo(q)
		}
	case len(segs) == 1 && segs[0] == "_bulk":
		if is(http.MethodPost, http.MethodPut) {
			s.handleBulk(q, "")
		}
	case len(segs) == 1 && segs[0] == "_mget":
		if is(http.MethodGet, http.MethodPost) {
			s.handleMget(q, "")
		}
	case len(segs) == 1 && segs[0] == "_refresh":
		if is(http.MethodGet, http.MethodPost) {
			s.handleRefresh(q, "")
		}
	case len(segs) == 1 && segs[0] == "_count":
		if is(http.MethodGet, http.MethodPost) {
			s.handleCount(q, "")
		}
	case len(segs) == 2 && segs[0] == "_cluster" && segs[1] == "health":
		if is(http.MethodGet) {
			s.handleHealth(q)
		}
	case strings.HasPrefix(segs[0], "_") && !(len(segs) == 1 && m == http.MethodPut):
		s.noHandler(q)
	case len(segs) == 1:
		switch m {
		case http.MethodPut:
			s.handleCreateIndex(q, segs[0])
		case http.MethodGet, http.MethodHead:
			s.handleGetIndex(q, segs[0])
		case http.MethodDelete:
			s.handleDeleteIndex(q, segs[0])
		default:
			s.wrongMethod(q, "DELETE", "GET", "HEAD", "PUT")
		}
	default:
		s.routeIndex(q, segs[0], segs[1:])
	}
}

// routeIndex dispatches /{index}/... requests.
func (s *Server) routeIndex(q *request, name string, rest []string) {
	m := q.r.Method
	is := func(methods ...string) bool {
		for _, x := range methods {
			if m == x {
				return true
			}
		}
		s.wrongMethod(q, methods...)
		return false
	}
	switch {
	case len(rest) == 1 && rest[0] == "_bulk":
		if is(http.MethodPost, http.MethodPut) {
			s.handleBulk(q, name)
		}
	case len(rest) == 1 && rest[0] == "_mget":
		if is(http.MethodGet, http.MethodPost) {
			s.handleMget(q, name)
		}
	case len(rest) == 1 && rest[0] == "_refresh":
		if is(http.MethodGet, http.MethodPost) {
			s.handleRefresh(q, name)
		}
	case len(rest) == 1 && rest[0] == "_count":
		if is(http.MethodGet, http.MethodPost) {
			s.handleCount(q, name)
		}
	case len(rest) == 1 && rest[0] == "_mapping":
		if is(http.MethodGet) {
			s.handleGetMapping(q, name)
		}
	case len(rest) == 1 && rest[0] == "_doc":
		if is(http.MethodPost) {
			s.handleWriteDoc(q, name, "index", "", false)
		}
	case len(rest) == 2 && rest[0] == "_doc":
		switch m {
		case http.MethodGet, http.MethodHead:
			s.handleGetDoc(q, name, rest[1])
		case http.MethodPut, http.MethodPost:
			s.handleWriteDoc(q, name, "index", rest[1], true)
		case http.MethodDelete:
			s.handleWriteDoc(q, name, "delete", rest[1], true)
		default:
			s.wrongMethod(q, "DELETE", "GET", "HEAD", "POST", "PUT")
		}
	case len(rest) == 2 && rest[0] == "_create":
		if is(http.MethodPost, http.MethodPut) {
			s.handleWriteDoc(q, name, "create", rest[1], true)
		}
	case len(rest) == 2 && rest[0] == "_update":
		if is(http.MethodPost) {
			s.handleWriteDoc(q, name, "update", rest[1], true)
		}
	default:
		s.noHandler(q)
	}
}
