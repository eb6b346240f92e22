// Package pgerr turns PostgreSQL connection errors into one clear line.
// pgconn reports every address and fallback it tried (with sslmode=prefer, a
// refused TLS attempt before the real answer), so a wrong password reads
// like a TLS problem and a refused connection is listed once per attempt.
// Clean keeps what tells the operator what is wrong: the server's own
// error when there is one, otherwise each distinct failure once.
package pgerr

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Clean returns err with a one-line message (see the package doc); errors.Is
// and errors.As still see err. nil stays nil.
func Clean(err error) error {
	if err == nil {
		return nil
	}
	return &cleaned{msg: Describe(err), err: err}
}

type cleaned struct {
	msg string
	err error
}

func (e *cleaned) Error() string { return e.msg }
func (e *cleaned) Unwrap() error { return e.err }

// Describe returns err's message in one line: for a failed connection, the
// server's error (with the address it came from) if the server answered,
// otherwise each distinct attempt's failure once.
func Describe(err error) string {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return oneLine(err.Error())
	}
	where := ""
	if ce.Config != nil {
		where = net.JoinHostPort(ce.Config.Host, fmt.Sprint(ce.Config.Port)) + ": "
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s%s (SQLSTATE %s)", where, pe.Message, pe.Code)
	}
	var parts []string
	seen := map[string]bool{}
	for _, leaf := range leaves(errors.Unwrap(ce)) {
		msg := leaf.Error()
		if seen[msg] {
			continue
		}
		seen[msg] = true
		parts = append(parts, msg)
	}
	// A TLS attempt the server refused, followed by a plain one, is only
	// sslmode=prefer's fallback: the plain attempt says what happened.
	if len(parts) > 1 {
		parts = dropTLSFallback(parts)
	}
	if len(parts) == 0 {
		return oneLine(err.Error())
	}
	return where + strings.Join(parts, "; ")
}

// leaves returns the innermost errors of a tree of joined errors, each with
// the message of the attempt it belongs to (the address and what failed,
// without the repeated "failed to connect" prefix).
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{stripAddress(err)}
}

// stripAddress drops pgconn's "127.0.0.1:5432 (localhost): " prefix of one
// attempt (the address is said once, in front) and its "dial error: "
// label.
func stripAddress(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "): "); i >= 0 && strings.Contains(msg[:i], " (") {
		msg = msg[i+3:]
	}
	msg = strings.TrimPrefix(msg, "dial error: ")
	return errors.New(oneLine(msg))
}

func dropTLSFallback(parts []string) []string {
	var out []string
	for _, p := range parts {
		if strings.Contains(p, "server refused TLS connection") {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return parts
	}
	return out
}

// oneLine joins the lines of a message.
func oneLine(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var parts []string
	for _, p := range strings.Split(s, "\n") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}
