package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/tlsfile"
)

// ErrIndexSettings is wrapped by the errors about an index Elasticsearch
// refused to create with Config.IndexSettings (a 400 other than "already
// exists" or an invalid name): the settings are wrong, and every index
// created with them would be refused the same way.
var ErrIndexSettings = cdc.Misconfigured("elasticsearch refused the index settings")

// errNotElasticsearch is the cause of the failures of requests to a server
// that does not say it is Elasticsearch.
var errNotElasticsearch = errors.New("the server is not Elasticsearch: its answers lack the header X-Elastic-Product: Elasticsearch")

// ESError is what Elasticsearch said about a request or an item that it
// refused.
type ESError struct {
	Status int    // HTTP status, e.g. 400
	Type   string // e.g. "document_parsing_exception"; "" when unknown
	Reason string // Elasticsearch's explanation, with its cause's
}

// Error returns "<status> <type>: <reason>".
func (e *ESError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}

// errorBody is the body of an Elasticsearch error response.
type errorBody struct {
	Error json.RawMessage `json:"error"`
}

// errorCause is the "error" object of a response or a bulk item.
type errorCause struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	CausedBy *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"caused_by"`
}

// reason joins the reason and its cause's.
func (c *errorCause) reason() string {
	r := c.Reason
	if c.CausedBy != nil && (c.CausedBy.Type != "" || c.CausedBy.Reason != "") {
		r = strings.TrimSpace(fmt.Sprintf("%s (caused by %s: %s)", r, c.CausedBy.Type, c.CausedBy.Reason))
	}
	return r
}

// responseError reads the error of a response whose status is not 2xx.
func responseError(res *esapi.Response) *ESError {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return parseError(res.StatusCode, body)
}

// parseError reads the error of a response from its status and body.
func parseError(status int, body []byte) *ESError {
	e := &ESError{Status: status}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && len(eb.Error) > 0 {
		var c errorCause
		if json.Unmarshal(eb.Error, &c) == nil {
			e.Type, e.Reason = c.Type, c.reason()
			return e
		}
		var s string
		if json.Unmarshal(eb.Error, &s) == nil {
			e.Reason = s
			return e
		}
	}
	e.Reason = shorten(string(bytes.TrimSpace(body)))
	if e.Reason == "" {
		e.Reason = http.StatusText(status)
	}
	return e
}

// shorten cuts s to 300 bytes.
func shorten(s string) string {
	const maxLen = 300
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}

// connError describes a request that got no answer: which servers, and
// whether TLS failed or the server is not Elasticsearch.
func (s *Sink) connError(err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("elasticsearch %s: %w", s.addrs, err)
	case strings.Contains(err.Error(), "server is not Elasticsearch"):
		// go-elasticsearch checks the product header of the first
		// successful answer, and says so with an unexported error.
		return fmt.Errorf("elasticsearch %s: %w", s.addrs, errNotElasticsearch)
	case tlsfile.HandshakeFailed(err):
		return fmt.Errorf("elasticsearch %s: TLS handshake failed: %w", s.addrs, err)
	}
	return fmt.Errorf("elasticsearch %s unreachable: %w", s.addrs, err)
}

// statusError describes a refused request, with advice for 401 and 403.
func (s *Sink) statusError(what string, e *ESError) error {
	switch e.Status {
	case http.StatusUnauthorized:
		if s.auth == "" {
			return fmt.Errorf("elasticsearch %s: %s: authentication required (%w): set username and password, or api_key", s.addrs, what, e)
		}
		return fmt.Errorf("elasticsearch %s: %s: authentication %s failed (%w): check the credentials", s.addrs, what, s.auth, e)
	case http.StatusForbidden:
		return fmt.Errorf("elasticsearch %s: %s: forbidden %s (%w): grant the missing privilege", s.addrs, what, orAnonymous(s.auth), e)
	}
	return fmt.Errorf("elasticsearch %s: %s: %w", s.addrs, what, e)
}

func orAnonymous(auth string) string {
	if auth == "" {
		return "without credentials"
	}
	return auth
}

// withTimeout bounds one request, its retries included.
func (s *Sink) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// isKnown reports whether the index is known to exist.
func (s *Sink) isKnown(name string) bool {
	s.imu.Lock()
	defer s.imu.Unlock()
	return s.known[name]
}

func (s *Sink) setKnown(name string) {
	s.imu.Lock()
	defer s.imu.Unlock()
	s.known[name] = true
}

// ensureIndex creates the index with the settings unless it exists. An
// index created by someone else meanwhile is fine. It returns an error
// wrapping errInvalidIndex when Elasticsearch refuses the name, and one
// wrapping ErrIndexSettings when it refuses the settings.
func (s *Sink) ensureIndex(ctx context.Context, name string) error {
	if s.isKnown(name) {
		return nil
	}
	exists, err := s.indexExists(ctx, name)
	if err != nil {
		return err
	}
	if !exists {
		if err := s.createIndex(ctx, name); err != nil {
			return err
		}
	}
	s.setKnown(name)
	return nil
}

// indexExists asks HEAD /<index>.
func (s *Sink) indexExists(ctx context.Context, name string) (bool, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := esapi.IndicesExistsRequest{Index: []string{name}}.Do(ctx, s.es)
	if err != nil {
		return false, s.connError(err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	// A HEAD answer has no body to explain itself.
	return false, s.statusError(fmt.Sprintf("HEAD index %s", quote(name)), &ESError{Status: res.StatusCode, Reason: http.StatusText(res.StatusCode)})
}

// createIndex creates the index with PUT /<index> and the settings.
func (s *Sink) createIndex(ctx context.Context, name string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := esapi.IndicesCreateRequest{Index: name, Body: bytes.NewReader(s.settings)}.Do(ctx, s.es)
	if err != nil {
		return s.connError(err)
	}
	defer res.Body.Close()
	if !res.IsError() {
		s.log.Info("created elasticsearch index", "index", name)
		return nil
	}
	e := responseError(res)
	switch {
	case e.Type == "resource_already_exists_exception":
		return nil // created meanwhile by someone else
	case e.Type == "invalid_index_name_exception":
		return fmt.Errorf("elasticsearch refused index name %s (%v): %w", quote(name), e, errInvalidIndex)
	case e.Status == http.StatusBadRequest:
		return fmt.Errorf("create elasticsearch index %s: %w: %w: fix the index settings", quote(name), ErrIndexSettings, e)
	}
	return s.statusError(fmt.Sprintf("create index %s", quote(name)), e)
}

// Prepare creates a constant index with Config.IndexSettings if it does not
// exist. Refused settings are an error wrapping ErrIndexSettings; failing to
// reach Elasticsearch is an error that does not wrap it: Write will retry.
// With a templated index, or without IndexSettings, Prepare does nothing:
// indices are created as events are routed to them.
func (s *Sink) Prepare(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	name, ok := s.index.Constant()
	if !ok || s.settings == nil {
		return nil
	}
	return s.ensureIndex(ctx, name)
}

// Check reports, one line per problem, what would keep the sink from
// writing: Elasticsearch unreachable, TLS failing, a server that is not
// Elasticsearch, credentials refused (401) or lacking privileges (403), a
// constant index that cannot be read. A constant index that does not exist
// is no problem: it is created (with IndexSettings, or by Elasticsearch) on
// the first write. Check returns nil when all is well. No line holds a
// password.
func (s *Sink) Check(ctx context.Context) []string {
	if s.closed.Load() {
		return []string{errClosed.Error()}
	}
	if err := s.info(ctx); err != nil {
		return []string{err.Error()}
	}
	name, ok := s.index.Constant()
	if !ok {
		return nil
	}
	if _, err := s.indexExists(ctx, name); err != nil {
		return []string{err.Error()}
	}
	return nil
}

// info asks GET /: is the server reachable, Elasticsearch, and are the
// credentials accepted.
func (s *Sink) info(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := esapi.InfoRequest{}.Do(ctx, s.es)
	if err != nil {
		return s.connError(err)
	}
	defer res.Body.Close()
	if res.IsError() {
		return s.statusError("GET /", responseError(res))
	}
	return nil
}
