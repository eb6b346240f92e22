package pgerr_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/martencdc/cdc/internal/pgerr"
)

// refusingServer is a PostgreSQL server that refuses TLS, then fails every
// login with a password error, as a server with scram auth does for a wrong
// password.
func refusingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				be := pgproto3.NewBackend(c, c)
				msg, err := be.ReceiveStartupMessage()
				if err != nil {
					return
				}
				if _, ok := msg.(*pgproto3.SSLRequest); ok {
					if _, err := c.Write([]byte("N")); err != nil {
						return
					}
					if _, err := be.ReceiveStartupMessage(); err != nil {
						return
					}
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "cdc"`})
				_ = be.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDescribe(t *testing.T) {
	wrong, refused := refusingServer(t), closedPort(t)
	for _, tc := range []struct {
		name, addr string
		want       string
		not        []string
	}{
		{"wrong password", wrong, wrong + `: password authentication failed for user "cdc" (SQLSTATE 28P01)`, []string{"tls", "TLS"}},
		{"refused", refused, refused + ": dial tcp " + refused + ": connect: connection refused", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(tc.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := pgconn.Connect(ctx, "postgres://cdc:secret@"+net.JoinHostPort(host, port)+"/db?sslmode=prefer")
			if err == nil {
				t.Fatal("connected")
			}
			got := pgerr.Describe(err)
			if got != tc.want {
				t.Fatalf("Describe:\n got %s\nwant %s\n(from %s)", got, tc.want, err)
			}
			for _, bad := range tc.not {
				if strings.Contains(got, bad) {
					t.Errorf("%q in %s", bad, got)
				}
			}
			if strings.Contains(got, "secret") {
				t.Errorf("password in %s", got)
			}
			c := pgerr.Clean(err)
			var ce *pgconn.ConnectError
			if c.Error() != got || !errors.As(c, &ce) {
				t.Errorf("Clean: %q, keeps the ConnectError: %v", c, errors.As(c, &ce))
			}
		})
	}
	if got := pgerr.Describe(errors.New("a\n b\n")); got != "a; b" {
		t.Errorf("other error: %q", got)
	}
}
