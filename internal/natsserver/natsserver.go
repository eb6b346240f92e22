// Package natsserver runs a real NATS server (nats-server, the same code
// as the released binary) inside the current process, with JetStream on
// and its store in a directory of the caller's choice: the NATS target of
// the tests of the nats sink and of cdc, and of the demo, as kfake is for
// Kafka.
//
// A server listens on 127.0.0.1 only. Stopping one and starting another on
// the same port and store directory is a server restart that keeps the
// streams and their messages.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a server. The zero value is a server on a free port
// whose store is in a new temporary directory of the server package's
// choosing; tests set Dir to t.TempDir().
type Config struct {
	// Dir is the JetStream store directory. Required for a server that
	// is to be restarted with its streams.
	Dir string
	// Port is the client port; 0 picks a free one.
	Port int
	// Username and Password, when set, are the one user allowed in.
	Username, Password string
	// Token, when set, is the token clients must present.
	Token string
	// NKey, when set, is the public NKey ("U...") of the one user allowed
	// in, who proves it by signing with the seed.
	NKey string
	// MaxPayload is the largest message the server takes, in bytes; 0
	// keeps the server's default (1 MiB).
	MaxPayload int32
	// NoJetStream starts the server without JetStream, as a plain NATS
	// server.
	NoJetStream bool
	// ReadyTimeout bounds the wait for the server to accept clients;
	// default 30s.
	ReadyTimeout time.Duration
}

// Server is a running NATS server.
type Server struct {
	srv  *server.Server
	port int
}

// Start starts a server and waits until it accepts clients.
func Start(cfg Config) (*Server, error) {
	port := cfg.Port
	if port == 0 {
		port = -1 // a random free port
	}
	opts := &server.Options{
		ServerName: "cdc-test",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  !cfg.NoJetStream,
		StoreDir:   cfg.Dir,
		Username:   cfg.Username,
		Password:   cfg.Password,
		MaxPayload: cfg.MaxPayload,
		NoLog:      true,
		NoSigs:     true,
		// The server's own limits on JetStream memory and disk are a share
		// of the machine's; a test server needs little.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	if cfg.Token != "" {
		opts.Authorization = cfg.Token
	}
	if cfg.NKey != "" {
		opts.Nkeys = []*server.NkeyUser{{Nkey: cfg.NKey}}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	go srv.Start()
	wait := cfg.ReadyTimeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, errors.New("start nats server: not ready for connections in " + wait.String())
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		return nil, errors.New("start nats server: it listens on no TCP address")
	}
	return &Server{srv: srv, port: addr.Port}, nil
}

// Addr is the server's client address, "127.0.0.1:port".
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL is the server's client URL, "nats://127.0.0.1:port".
func (s *Server) URL() string { return "nats://" + s.Addr() }

// Port is the server's client port.
func (s *Server) Port() int { return s.port }

// Stop shuts the server down and waits until it is gone; its store stays
// on disk. Stop is idempotent.
func (s *Server) Stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// Messages returns every message of the stream, in stream order, read
// through a client connection of its own.
func (s *Server) Messages(ctx context.Context, stream string) ([]*jetstream.RawStreamMsg, error) {
	return Messages(ctx, s.URL(), stream)
}

// Count returns how many messages the stream holds (0 when it does not
// exist).
func (s *Server) Count(ctx context.Context, stream string) (uint64, error) {
	nc, js, err := connect(s.URL())
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	st, err := js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("nats stream %s: %w", stream, err)
	}
	return st.CachedInfo().State.Msgs, nil
}

// Messages returns every message of the stream on the server at url, in
// stream order.
func Messages(ctx context.Context, url, stream string) ([]*jetstream.RawStreamMsg, error) {
	nc, js, err := connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("nats stream %s: %w", stream, err)
	}
	state := st.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := state.FirstSeq; seq <= state.LastSeq && state.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			continue // deleted
		case err != nil:
			return nil, fmt.Errorf("nats stream %s: message %d: %w", stream, seq, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func connect(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("cdc-test-reader"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
