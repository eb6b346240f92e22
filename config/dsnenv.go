package config

import (
	"strings"
)

// This file makes ${VAR} safe in connection strings: a value lands in a DSN
// escaped for the place it lands in, so that a password with "@", "/", "#",
// "%", a space or a quote neither breaks the DSN nor spills into its host
// (where errors would show it).

// dsnEscaper returns, for the template of a connection string, the escaping
// of a value substituted at byte offset at of the template: in a URL's user
// info, percent-encoding; in its query, query encoding; in the key=value
// form, libpq's quoting. Elsewhere (a URL's host and path) values are used
// as they are.
func dsnEscaper(template string) escaper {
	if m := urlSchemeRE.FindString(template); m != "" {
		userEnd, queryStart := urlParts(template, len(m))
		return func(at int) func(string) string {
			switch {
			case at < userEnd:
				return escapeUserInfo
			case queryStart >= 0 && at > queryStart:
				return escapeQuery
			}
			return nil
		}
	}
	if !strings.Contains(template, "=") {
		return func(int) func(string) string { return nil } // not a key=value DSN
	}
	return func(at int) func(string) string {
		before := strings.TrimRight(template[:at], " \t")
		end := at + strings.IndexByte(template[at:], '}') + 1
		switch {
		case strings.HasSuffix(before, "'"):
			return escapeQuoted
		case strings.HasSuffix(before, "=") && (end == len(template) || strings.IndexByte(" \t\n", template[end]) >= 0):
			return quoteKeyValue // the whole value
		}
		return escapeQuoted // part of an unquoted value
	}
}

// urlParts returns where the user info of a URL template ends (its last "@"
// before the host; 0 when there is none) and where its query starts (-1
// when there is none), ignoring what is inside ${...}.
func urlParts(t string, from int) (userEnd, queryStart int) {
	queryStart = -1
	authorityEnd := len(t)
	for i := from; i < len(t); i++ {
		if strings.HasPrefix(t[i:], "${") {
			if end := strings.IndexByte(t[i:], '}'); end > 0 {
				i += end
				continue
			}
		}
		switch t[i] {
		case '@':
			if authorityEnd == len(t) {
				userEnd = i
			}
		case '/', '#':
			if authorityEnd == len(t) {
				authorityEnd = i
			}
		case '?':
			if authorityEnd == len(t) {
				authorityEnd = i
			}
			if queryStart < 0 {
				queryStart = i
			}
		}
	}
	return userEnd, queryStart
}

// escapeUserInfo percent-encodes every byte of v but RFC 3986's unreserved
// characters.
func escapeUserInfo(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// escapeQuery encodes v for a URL query value: the same as the user info.
func escapeQuery(v string) string { return escapeUserInfo(v) }

// escapeQuoted escapes v inside a single-quoted key=value value.
func escapeQuoted(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}

// quoteKeyValue makes v one key=value value: quoted when it is empty or
// holds a space, a quote or a backslash.
func quoteKeyValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + escapeQuoted(v) + "'"
}
