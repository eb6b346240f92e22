package tlsfile

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/martencdc/cdc/internal/tlsfile/tlsfiletest"
)

func TestConfigErrors(t *testing.T) {
	p := tlsfiletest.New(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name  string
		files Files
		want  string // substring of the error; "" for none
	}{
		{"zero", Files{}, ""},
		{"ca", Files{CAFile: p.CAFile}, ""},
		{"client cert", Files{CAFile: p.CAFile, CertFile: p.CertFile, KeyFile: p.KeyFile}, ""},
		{"missing CA", Files{CAFile: missing}, missing},
		{"CA not PEM", Files{CAFile: notPEM}, "CA file " + notPEM + ": no PEM certificate"},
		{"cert without key", Files{CertFile: p.CertFile}, p.CertFile + ": no key file"},
		{"key without cert", Files{KeyFile: p.KeyFile}, p.KeyFile + ": no certificate file"},
		{"key not PEM", Files{CertFile: p.CertFile, KeyFile: notPEM}, notPEM},
		{"missing key", Files{CertFile: p.CertFile, KeyFile: missing}, missing},
		{"key of another cert", Files{CertFile: p.CAFile, KeyFile: p.KeyFile}, p.CAFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.files.Config()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.MinVersion != tls.VersionTLS12 {
					t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	p := tlsfiletest.New(t)
	other := tlsfiletest.New(t)
	mutual := p.Server.Clone()
	mutual.ClientAuth = tls.RequireAndVerifyClientCert
	mutual.ClientCAs = p.CA
	tests := []struct {
		name   string
		server *tls.Config
		files  Files
		ok     bool
	}{
		{"trusted CA", p.Server, Files{CAFile: p.CAFile}, true},
		{"server name", p.Server, Files{CAFile: p.CAFile, ServerName: "localhost"}, true},
		{"wrong server name", p.Server, Files{CAFile: p.CAFile, ServerName: "kafka.example.com"}, false},
		{"other CA", p.Server, Files{CAFile: other.CAFile}, false},
		{"insecure", p.Server, Files{InsecureSkipVerify: true}, true},
		{"mutual with cert", mutual, Files{CAFile: p.CAFile, CertFile: p.CertFile, KeyFile: p.KeyFile}, true},
		{"mutual without cert", mutual, Files{CAFile: p.CAFile}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.files.Config()
			if err != nil {
				t.Fatal(err)
			}
			err = handshake(t, tt.server, cfg)
			if tt.ok != (err == nil) {
				t.Fatalf("handshake err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

// handshake connects a client to a server and exchanges one byte each way:
// with TLS 1.3 a server refuses a client certificate only after the
// client's handshake is done, so the client must read to notice.
func handshake(t *testing.T, server, client *tls.Config) error {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err == nil {
			_, _ = c.Write(buf)
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}
