// Package tlsfile builds the *tls.Config of a client (a Kafka or
// Elasticsearch sink) from PEM files named in the configuration: the CA
// bundle that verifies the server, and an optional client certificate and key
// for mutual TLS.
//
// The files are read once, when Config is called: replacing a file on disk
// takes effect at the next start. Every error names the file it is about,
// never its content.
package tlsfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files of a TLS client configuration. The zero value is
// valid: verify the server against the system's roots, no client
// certificate.
type Files struct {
	// CAFile is a PEM file of one or more CA certificates that verify the
	// server's certificate, instead of the system's roots. Default "": the
	// system's roots.
	CAFile string
	// CertFile is a PEM file of the client certificate (followed by its
	// intermediates) presented to servers that ask for one (mutual TLS).
	// Requires KeyFile. Default "": no client certificate.
	CertFile string
	// KeyFile is the PEM file of CertFile's private key (PKCS #1, PKCS #8 or
	// SEC 1, unencrypted). Requires CertFile.
	KeyFile string
	// ServerName is the name the server's certificate must hold. Default "":
	// the host name dialled.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. For tests only: it
	// gives up the protection TLS exists for. Default false.
	InsecureSkipVerify bool
}

// Config reads the files and returns a client configuration requiring TLS
// 1.2 or newer.
func (f Files) Config() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify, //nolint:gosec // asked for explicitly, documented as tests only
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s with key %s: %w", f.CertFile, f.KeyFile, keyPairError(err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	case f.CertFile != "":
		return nil, fmt.Errorf("client certificate %s: no key file given", f.CertFile)
	case f.KeyFile != "":
		return nil, fmt.Errorf("client key %s: no certificate file given", f.KeyFile)
	}
	return cfg, nil
}

// keyPairError drops the path tls.LoadX509KeyPair may repeat (the caller names
// both files) and keeps what is wrong.
func keyPairError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("read %s: %w", pe.Path, pe.Err)
	}
	return err
}

// HandshakeFailed reports whether err is a failed TLS handshake: the
// server's certificate is not trusted, does not match the name, or the
// server does not speak TLS. Sinks use it to say "TLS" rather than
// "unreachable".
func HandshakeFailed(err error) bool {
	var (
		recordHeader tls.RecordHeaderError
		verify       *tls.CertificateVerificationError
		unknownCA    x509.UnknownAuthorityError
		hostname     x509.HostnameError
		invalid      x509.CertificateInvalidError
		alert        tls.AlertError
	)
	return errors.As(err, &recordHeader) || errors.As(err, &verify) || errors.As(err, &unknownCA) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &alert)
}
