package config

import (
	"regexp"
	"strings"
)

// redacted replaces secrets in the output of Redact.
const redacted = "xxxxx"

// urlSchemeRE matches the scheme of a URL-form connection string.
var urlSchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// secretParams are the connection parameters Redact hides.
var secretParams = []string{"password", "sslpassword"}

// Redact returns dsn with its passwords replaced by "xxxxx", for logs and
// status output. It handles the URL form
// (postgres://user:secret@host/db?sslpassword=secret) and the key=value form
// (host=db password='sec ret'). It errs on the side of hiding too much: a
// string it cannot make sense of has everything after the first password
// replaced. Strings with no password come back unchanged.
func Redact(dsn string) string {
	if m := urlSchemeRE.FindString(dsn); m != "" {
		return m + redactURL(dsn[len(m):])
	}
	return redactKeyValues(dsn)
}

// redactURL redacts what follows "scheme://".
func redactURL(rest string) string {
	// The user info ends at the last "@" before the query; a password with a
	// raw "?" puts the "@" after it, so then look in the whole string.
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		q = len(rest)
	}
	at := strings.LastIndexByte(rest[:q], '@')
	if at < 0 {
		at = strings.LastIndexByte(rest, '@')
	}
	if at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			rest = rest[:colon+1] + redacted + rest[at:]
			at = colon + 1 + len(redacted)
		}
	}
	q = strings.IndexByte(rest[max(at, 0):], '?')
	if q < 0 {
		return rest
	}
	q += max(at, 0)
	params := strings.Split(rest[q+1:], "&")
	for i, p := range params {
		k, _, ok := strings.Cut(p, "=")
		if ok && isSecretParam(k) {
			params[i] = k + "=" + redacted
		}
	}
	return rest[:q+1] + strings.Join(params, "&")
}

// redactKeyValues redacts a libpq key=value connection string, where values
// are bare words or single-quoted with backslash escapes.
func redactKeyValues(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		// Copy whitespace and the key.
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		k := j
		for k < len(s) && s[k] != '=' && !isSpace(s[k]) {
			k++
		}
		key := s[j:k]
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if k >= len(s) || s[k] != '=' {
			// Not key=value: keep it unless a secret could follow.
			if strings.Contains(strings.ToLower(s[i:]), "password") {
				return b.String() + s[i:j] + redacted
			}
			return b.String() + s[i:]
		}
		k++ // '='
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		b.WriteString(s[i:k])
		// The value.
		v := k
		if v < len(s) && s[v] == '\'' {
			v++
			for v < len(s) && s[v] != '\'' {
				if s[v] == '\\' {
					v++
				}
				v++
			}
			v = min(v+1, len(s)) // closing quote, or the end if unterminated
		} else {
			for v < len(s) && !isSpace(s[v]) {
				if s[v] == '\\' {
					v++
				}
				v++
			}
			v = min(v, len(s))
		}
		if isSecretParam(key) {
			b.WriteString(redacted)
		} else {
			b.WriteString(s[k:v])
		}
		i = v
	}
	return b.String()
}

func isSecretParam(key string) bool {
	for _, p := range secretParams {
		if strings.EqualFold(key, p) {
			return true
		}
	}
	return false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
