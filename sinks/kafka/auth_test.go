package kafka

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/tlsfile"
	"github.com/martencdc/cdc/internal/tlsfile/tlsfiletest"
)

const password = "s3cret-pa55"

func TestSASL(t *testing.T) {
	for _, mech := range []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(strings.ToUpper(mech), "cdc", password))
			createTopic(t, c, "authed", 3, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			s := newSink(t, c, "authed", Config{SASL: &SASL{Mechanism: mech, Username: "cdc", Password: password}})
			if problems := s.Check(ctx); problems != nil {
				t.Fatalf("Check = %q", problems)
			}
			events := makeEvents(5, 4, 100, 1)
			if err := s.Write(ctx, cdc.Batch{Events: events}); err != nil {
				t.Fatal(err)
			}
			if n := count(c, "authed"); n != int64(len(events)) {
				t.Errorf("%d records, want %d", n, len(events))
			}

			bad := newSink(t, c, "authed", Config{SASL: &SASL{Mechanism: mech, Username: "cdc", Password: "wrong-" + password}})
			problems := bad.Check(ctx)
			// kfake closes the connection instead of answering
			// SASL_AUTHENTICATION_FAILED: the problem asks whether SASL
			// failed rather than saying it did.
			if len(problems) != 1 || !strings.Contains(problems[0], "SASL "+strings.ToUpper(mech)+` as "cdc"`) {
				t.Errorf("Check with a wrong password = %q, want the SASL failure", problems)
			}
			err := bad.Write(ctx, cdc.Batch{Events: events})
			if err == nil {
				t.Fatal("Write with a wrong password succeeded")
			}
			for _, msg := range append(problems, err.Error()) {
				if strings.Contains(msg, password) {
					t.Errorf("%q holds the password", msg)
				}
			}

			none := newSink(t, c, "authed", Config{})
			if problems := none.Check(ctx); len(problems) != 1 {
				t.Errorf("Check without SASL = %q, want one problem", problems)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := tlsfiletest.New(t)
	other := tlsfiletest.New(t)
	c := newCluster(t, kfake.TLS(pki.Server))
	createTopic(t, c, "secure", 3, nil)
	config := func(f tlsfile.Files) *tls.Config {
		cfg, err := f.Config()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name  string
		tls   *tls.Config
		check string // in the one problem Check reports; "" for none
	}{
		{"trusted", config(tlsfile.Files{CAFile: pki.CAFile}), ""},
		{"untrusted", config(tlsfile.Files{CAFile: other.CAFile}), "TLS handshake failed"},
		{"plaintext", nil, "closed the connection (do the brokers expect TLS?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s := newSink(t, c, "secure", Config{TLS: tt.tls, WriteTimeout: 2 * time.Second})
			problems := s.Check(ctx)
			if tt.check != "" {
				if len(problems) != 1 || !strings.Contains(problems[0], tt.check) {
					t.Fatalf("Check = %q, want one problem saying %q", problems, tt.check)
				}
				t.Logf("Check: %s", problems[0])
				return
			}
			if problems != nil {
				t.Fatalf("Check = %q", problems)
			}
			before := count(c, "secure")
			events := makeEvents(5, 4, 100, 1)
			if err := s.Write(ctx, cdc.Batch{Events: events}); err != nil {
				t.Fatal(err)
			}
			if n := count(c, "secure") - before; n != int64(len(events)) {
				t.Errorf("%d records, want %d", n, len(events))
			}
		})
	}
}
