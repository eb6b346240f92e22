package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/route"
)

// Defaults of Config.
const (
	// DefaultMaxInFlight is the default of Config.MaxInFlight.
	DefaultMaxInFlight = 512
	// DefaultAckTimeout is the default of Config.AckTimeout.
	DefaultAckTimeout = 10 * time.Second
	// DefaultName is the default of Config.Name.
	DefaultName = "cdc"
	// DefaultDuplicateWindow is JetStream's duplicate window for a stream
	// created without one (and without a shorter max age).
	DefaultDuplicateWindow = 2 * time.Minute
)

// RetryAllowance is the longest time the pipeline waits before it writes a
// failed batch again (its largest backoff). See Config.MinDuplicateWindow.
const RetryAllowance = 10 * time.Second

// Config configures a NATS JetStream sink. Servers, Subject and Stream are
// required.
type Config struct {
	// Servers are the servers to connect to: "host:port" (port 4222 when
	// omitted) or URLs nats://host:port and tls://host:port, without
	// credentials (see Auth). Required.
	Servers []string
	// Subject is the subject of each event, rendered per event (see
	// package route), e.g. "helpdesk.{{.TenantID}}.{{.Type}}". Required.
	Subject *route.Template
	// Stream is the JetStream stream that must store every message: each
	// message carries Nats-Expected-Stream, so that one whose subject
	// another stream (or none) takes is refused. Required.
	Stream string
	// CreateStream creates Stream when it does not exist, with the
	// settings below. Default false: a missing stream is an error. A
	// stream that exists is used as it is, never changed.
	CreateStream bool
	// StreamSubjects are the subjects of a stream the sink creates.
	// Default: the subject when it is a constant, or the template's
	// literal prefix up to its last dot followed by ">" (the prefix must
	// then end with a dot: "helpdesk.{{.Type}}" gives "helpdesk.>").
	StreamSubjects []string
	// Retention, MaxAge, Replicas and Storage are the retention policy
	// (default RetentionLimits), the age after which messages are removed
	// (default 0: never), the replica count (default 1) and the storage
	// (default StorageFile) of a stream the sink creates.
	Retention Retention
	MaxAge    time.Duration
	Replicas  int
	Storage   Storage
	// DuplicateWindow is the duplicate window of a stream the sink creates:
	// how long the server remembers a message id. Default 0: JetStream's
	// (DefaultDuplicateWindow, 2 minutes, or MaxAge when shorter).
	DuplicateWindow time.Duration
	// Value is what message payloads hold. Default ValueEnvelope.
	Value Value
	// MaxInFlight bounds the messages published and not yet acknowledged
	// by the stream. Default DefaultMaxInFlight (512).
	MaxInFlight int
	// AckTimeout is how long the sink waits for the acknowledgement of one
	// message before the batch fails (and is written again by the
	// pipeline). It also bounds each JetStream API request and the dial
	// of a server. Default DefaultAckTimeout (10s).
	AckTimeout time.Duration
	// Auth authenticates the connection. Default: none.
	Auth Auth
	// TLS secures the connection (see package internal/tlsfile). Default
	// nil: plaintext, unless a server URL is tls://.
	TLS *tls.Config
	// Name is the connection name the servers show. Default DefaultName
	// ("cdc").
	Name string
	// Logger receives the sink's logs: streams created, disconnections and
	// reconnections (Info and Warn). The sink adds component; the caller's
	// logger should carry the pipeline and the sink. Default: none.
	Logger *slog.Logger
}

// Validate checks the configuration. Zero values stand for the defaults.
func (c *Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("nats sink: no servers")
	}
	for i, s := range c.Servers {
		if err := CheckServer(s); err != nil {
			return fmt.Errorf("nats sink: servers[%d]: %w", i, err)
		}
	}
	if c.Subject == nil {
		return errors.New("nats sink: no subject template")
	}
	if subj, ok := c.Subject.Constant(); ok {
		if err := CheckSubject(subj, false); err != nil {
			return fmt.Errorf("nats sink: subject: %w", err)
		}
	}
	if err := CheckStreamName(c.Stream); err != nil {
		return fmt.Errorf("nats sink: stream: %w", err)
	}
	for i, s := range c.StreamSubjects {
		if err := CheckSubject(s, true); err != nil {
			return fmt.Errorf("nats sink: stream_subjects[%d]: %w", i, err)
		}
	}
	if c.CreateStream && len(c.StreamSubjects) == 0 {
		if _, err := defaultStreamSubjects(c.Subject); err != nil {
			return fmt.Errorf("nats sink: %w", err)
		}
	}
	for _, err := range []error{
		oneOf("value", c.Value, Values()),
		oneOf("stream_retention", c.Retention, Retentions()),
		oneOf("stream_storage", c.Storage, Storages()),
	} {
		if err != nil {
			return fmt.Errorf("nats sink: %w", err)
		}
	}
	switch {
	case c.MaxAge < 0:
		return fmt.Errorf("nats sink: stream_max_age %s is negative", c.MaxAge)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("nats sink: stream_replicas %d: want 1 to 5", c.Replicas)
	case c.DuplicateWindow < 0:
		return fmt.Errorf("nats sink: duplicate_window %s is negative", c.DuplicateWindow)
	case c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge:
		return fmt.Errorf("nats sink: duplicate_window %s is longer than stream_max_age %s", c.DuplicateWindow, c.MaxAge)
	case c.MaxInFlight < 0:
		return fmt.Errorf("nats sink: max_in_flight %d is negative", c.MaxInFlight)
	case c.AckTimeout < 0:
		return fmt.Errorf("nats sink: ack_timeout %s is negative", c.AckTimeout)
	}
	if err := c.Auth.Check(); err != nil {
		return fmt.Errorf("nats sink: %w", err)
	}
	return nil
}

// MinDuplicateWindow is the shortest duplicate window that keeps the
// stream free of duplicates while the sink runs, 2 × AckTimeout +
// RetryAllowance: a message whose acknowledgement does not come within
// AckTimeout fails its Write once the messages published before the
// failure was seen are answered (within another AckTimeout), and the
// pipeline's next attempt, at most RetryAllowance later, publishes it
// again at once (after the earlier messages of its event stream, when they
// were not acknowledged either). A restart
// (after a crash, or a standby taking over) publishes again what came
// after the sink's checkpoint, and is exactly once only when it does so
// within the window.
func (c *Config) MinDuplicateWindow() time.Duration {
	t := c.AckTimeout
	if t == 0 {
		t = DefaultAckTimeout
	}
	return 2*t + RetryAllowance
}

// createdWindow is the duplicate window JetStream gives a stream created
// with c's settings.
func (c *Config) createdWindow() time.Duration {
	switch {
	case c.DuplicateWindow > 0:
		return c.DuplicateWindow
	case c.MaxAge > 0 && c.MaxAge < DefaultDuplicateWindow:
		return c.MaxAge
	}
	return DefaultDuplicateWindow
}

// CheckServer checks a server address: "host", "host:port", or a nats://
// or tls:// URL without credentials. It never quotes the address, in case
// someone put credentials in it.
func CheckServer(s string) error {
	if s == "" {
		return errors.New("empty server address")
	}
	if strings.ContainsAny(s, " \t,") {
		return errors.New("not host:port or a URL (it holds ',' or blanks)")
	}
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/@") {
			return errors.New("not host:port (it holds '/' or '@')")
		}
		if strings.Contains(s, ":") {
			if _, _, err := net.SplitHostPort(s); err != nil {
				return errors.New("not host:port")
			}
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "nats" && u.Scheme != "tls":
		return fmt.Errorf("scheme %q: want nats:// or tls://", u.Scheme)
	case u.User != nil:
		return errors.New("the URL holds credentials: set user and password (or token) instead, so that they never show in logs")
	case u.Host == "":
		return errors.New("the URL names no host")
	}
	return nil
}

// CheckStreamName checks a JetStream stream name: not empty, at most 255
// bytes, none of . * > / \ or blanks.
func CheckStreamName(s string) error {
	switch {
	case s == "":
		return errors.New("no stream name")
	case len(s) > 255:
		return errors.New("stream name longer than 255 bytes")
	case strings.ContainsAny(s, ".*>/\\ \t\r\n\x00"):
		return fmt.Errorf("stream name %q holds one of . * > / \\ or blanks", s)
	}
	return nil
}

// Sink publishes events to a JetStream stream. Its methods are safe for
// concurrent use; Write calls are serialised.
type Sink struct {
	cfg     Config // with defaults set
	servers string // for messages: "a:4222, b:4222"
	log     *slog.Logger
	sem     chan struct{} // held by Write and Close
	closed  atomic.Bool
	acked   map[string]struct{} // guarded by sem; see Write
	// recreated is set (under sem) when a Write created the stream again:
	// what the stream had acknowledged is gone.
	recreated bool

	mu      sync.Mutex // guards what follows
	nc      *nats.Conn // nil until the first connection
	js      jetstream.JetStream
	ensured bool // the stream was found or created on nc
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("nats sink is closed")

// New returns a NATS JetStream sink. It validates cfg and connects to
// nothing: the first Write, Inspect or Prepare does.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Value == "" {
		cfg.Value = ValueEnvelope
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.CreateStream && len(cfg.StreamSubjects) == 0 {
		cfg.StreamSubjects, _ = defaultStreamSubjects(cfg.Subject) // checked by Validate
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		cfg:     cfg,
		servers: strings.Join(cfg.Servers, ", "),
		log:     log.With("component", "nats"),
		sem:     make(chan struct{}, 1),
	}, nil
}

// defaultStreamSubjects is the subjects of a created stream when none are
// configured: see Config.StreamSubjects.
func defaultStreamSubjects(t *route.Template) ([]string, error) {
	if t == nil {
		return nil, errors.New("no subject template")
	}
	if subj, ok := t.Constant(); ok {
		return []string{subj}, nil
	}
	p := t.Prefix()
	i := strings.LastIndexByte(p, '.')
	if i <= 0 {
		return nil, fmt.Errorf("subject %q has no literal prefix ending with a dot to derive the stream's subjects from: set stream_subjects", t.String())
	}
	subj := p[:i+1] + ">"
	if err := CheckSubject(subj, true); err != nil {
		return nil, fmt.Errorf("the stream subject %q derived from subject %q: %w: set stream_subjects", subj, t.String(), err)
	}
	return []string{subj}, nil
}

// Close closes the connection. A Write in progress is waited for until ctx
// ends. Close is idempotent; Write fails after it.
func (s *Sink) Close(ctx context.Context) error {
	s.closed.Store(true)
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		s.disconnect()
		return fmt.Errorf("close nats sink: a write is still in progress: %w", ctx.Err())
	}
	s.acked = nil
	s.disconnect()
	return nil
}

func (s *Sink) disconnect() {
	s.mu.Lock()
	nc := s.nc
	s.nc, s.js, s.ensured = nil, nil, false
	s.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// conn returns the connection and its JetStream context, connecting when
// there is none (or the one there is was closed for good).
func (s *Sink) conn() (*nats.Conn, jetstream.JetStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, nil, errClosed
	}
	if s.nc != nil && !s.nc.IsClosed() {
		return s.nc, s.js, nil
	}
	opts, err := s.options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(strings.Join(s.cfg.Servers, ","), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats (%s): %w", s.servers, err)
	}
	js, err := jetstream.New(nc,
		// The sink keeps MaxInFlight itself; the client's own bound is
		// higher, so that publishes of an abandoned Write (its context
		// ended) still waiting for their acknowledgement never stall the
		// next.
		jetstream.WithPublishAsyncMaxPending(4*s.cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(s.cfg.AckTimeout),
		jetstream.WithDefaultTimeout(s.cfg.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats jetstream: %w", err)
	}
	s.nc, s.js, s.ensured = nc, js, false
	return nc, js, nil
}

// options are the connection's options.
func (s *Sink) options() ([]nats.Option, error) {
	log := s.log
	opts := []nats.Option{
		nats.Name(s.cfg.Name),
		nats.Timeout(s.cfg.AckTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// A publish while the connection is down fails at once, rather
		// than waiting in a buffer: the batch fails and is written again
		// after the pipeline's backoff.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats connection lost; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats connection restored", "server", nc.ConnectedAddr())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats client error", "err", err)
		}),
	}
	if s.cfg.TLS != nil {
		opts = append(opts, nats.Secure(s.cfg.TLS))
	}
	a := s.cfg.Auth
	switch {
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			// The error may quote the file's content: it is not passed on.
			return nil, cdc.Misconfigured(fmt.Sprintf("nats sink: nkey_file %s: cannot read an NKey seed from it", a.NKeyFile))
		}
		opts = append(opts, o)
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	return opts, nil
}
