package postgres

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/martencdc/cdc"
)

// field is an event field a placeholder stands for.
type field uint8

// The fields, in the order Placeholders lists them.
const (
	fieldID field = iota
	fieldSeqID
	fieldStreamID
	fieldVersion
	fieldType
	fieldDotnetType
	fieldTenantID
	fieldTimestamp
	fieldData
	fieldCorrelationID
	fieldCausationID
	fieldHeaders
	fieldUserName
	fieldLSN
	fieldCommitTime
	numFields
)

// fieldNames are the placeholder names, without the '$'.
var fieldNames = [numFields]string{
	fieldID:            "id",
	fieldSeqID:         "seq_id",
	fieldStreamID:      "stream_id",
	fieldVersion:       "version",
	fieldType:          "type",
	fieldDotnetType:    "dotnet_type",
	fieldTenantID:      "tenant_id",
	fieldTimestamp:     "timestamp",
	fieldData:          "data",
	fieldCorrelationID: "correlation_id",
	fieldCausationID:   "causation_id",
	fieldHeaders:       "headers",
	fieldUserName:      "user_name",
	fieldLSN:           "lsn",
	fieldCommitTime:    "commit_time",
}

// Placeholders returns the placeholders SQL statements may use, "$id",
// "$seq_id", ... "$commit_time", in envelope order.
func Placeholders() []string {
	out := make([]string, numFields)
	for i, n := range fieldNames {
		out[i] = "$" + n
	}
	return out
}

// lookupField returns the field named name (without '$').
func lookupField(name string) (field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return field(i), true
		}
	}
	return 0, false
}

// isJSON reports whether the field is bound as jsonb.
func (f field) isJSON() bool { return f == fieldData || f == fieldHeaders }

// value returns the query argument of the field for e: a string sent in
// text format, which PostgreSQL reads as the parameter's type (inferred from
// the context, like a quoted literal), or nil (NULL) for an absent optional
// field.
func (f field) value(e *cdc.Event) any {
	switch f {
	case fieldID:
		return e.ID
	case fieldSeqID:
		return strconv.FormatInt(e.SeqID, 10)
	case fieldStreamID:
		return e.StreamID
	case fieldVersion:
		return strconv.FormatInt(e.Version, 10)
	case fieldType:
		return e.Type
	case fieldDotnetType:
		return optional(e.DotnetType)
	case fieldTenantID:
		return e.TenantID
	case fieldTimestamp:
		return timeText(e.Timestamp)
	case fieldData:
		return jsonText(e.Data)
	case fieldCorrelationID:
		return optional(e.CorrelationID)
	case fieldCausationID:
		return optional(e.CausationID)
	case fieldHeaders:
		return jsonText(e.Headers)
	case fieldUserName:
		return optional(e.UserName)
	case fieldLSN:
		return e.LSN.String()
	case fieldCommitTime:
		return timeText(e.CommitTime)
	}
	return nil
}

// optional returns s, or nil (NULL) when s is empty.
func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// timeText formats t as PostgreSQL reads a timestamptz (microseconds, UTC),
// or returns nil (NULL) for the zero time.
func timeText(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
}

// jsonText returns the JSON text of raw, or nil (NULL) when raw is empty.
func jsonText(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

// statement is one parsed SQL statement of a projection.
type statement struct {
	source string  // as written
	text   string  // with $name placeholders replaced by $1, $2...
	fields []field // the field of each parameter: fields[0] is $1
}

// args returns the query arguments of the statement for e.
func (st *statement) args(e *cdc.Event) []any {
	out := make([]any, len(st.fields))
	for i, f := range st.fields {
		out[i] = f.value(e)
	}
	return out
}

// parseStatement replaces the $name placeholders of src with positional
// parameters. It tokenizes just enough SQL to leave alone what is not a
// placeholder: string literals ('...', E'...' with backslash escapes),
// quoted identifiers ("..."), comments (-- and nested /* */), dollar-quoted
// strings ($$...$$, $tag$...$tag$), identifiers holding '$' (a$b) and casts
// (::). Positional parameters ($1), unknown names, several commands
// (a ';' followed by more SQL) and an empty statement are errors. It assumes
// standard_conforming_strings = on (the default since PostgreSQL 9.1).
func parseStatement(src string) (statement, error) {
	st := statement{source: src}
	var out strings.Builder
	out.Grow(len(src) + 16)
	param := map[field]int{} // field -> parameter number
	hasCode := false         // anything but blanks and comments seen
	ended := false           // a ';' ended the command
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		switch {
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			out.WriteString(src[start:i])
			continue
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			end, err := skipBlockComment(src, i)
			if err != nil {
				return st, err
			}
			i = end
			out.WriteString(src[start:i])
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			out.WriteByte(c)
			i++
			continue
		}
		if ended {
			return st, fmt.Errorf("more than one SQL command (text after ';' at %s): write each command as its own statement", lineCol(src, i))
		}
		hasCode = true
		switch {
		case c == ';':
			ended = true
			i++
		case c == '\'':
			end, err := skipQuoted(src, i, '\'', false)
			if err != nil {
				return st, err
			}
			i = end
		case c == '"':
			end, err := skipQuoted(src, i, '"', false)
			if err != nil {
				return st, err
			}
			i = end
		case isIdentStart(c):
			for i < len(src) && isIdentChar(src[i]) {
				i++
			}
			// E'...' is an escape string: backslash escapes the quote.
			if i-start == 1 && (c == 'e' || c == 'E') && i < len(src) && src[i] == '\'' {
				end, err := skipQuoted(src, i, '\'', true)
				if err != nil {
					return st, err
				}
				i = end
			}
		case c == '$':
			j := i + 1
			for j < len(src) && isTagChar(src[j]) {
				j++
			}
			name := src[i+1 : j]
			switch {
			case j < len(src) && src[j] == '$' && (name == "" || !isDigit(name[0])):
				end, err := skipDollarQuoted(src, i, src[i:j+1])
				if err != nil {
					return st, err
				}
				i = end
			case name != "" && isDigit(name[0]):
				return st, fmt.Errorf("positional parameter $%s at %s: use the named placeholders (%s)", digits(name), lineCol(src, i), strings.Join(Placeholders(), " "))
			case name != "":
				f, ok := lookupField(name)
				if !ok {
					return st, fmt.Errorf("unknown placeholder $%s at %s (known: %s)", name, lineCol(src, i), strings.Join(Placeholders(), " "))
				}
				n, seen := param[f]
				if !seen {
					st.fields = append(st.fields, f)
					n = len(st.fields)
					param[f] = n
				}
				if f.isJSON() {
					fmt.Fprintf(&out, "($%d::text::jsonb)", n)
				} else {
					fmt.Fprintf(&out, "$%d", n)
				}
				i = j
				continue
			default:
				i++ // a lone '$': PostgreSQL reports it
			}
		default:
			i++
		}
		out.WriteString(src[start:i])
	}
	if !hasCode {
		return st, errors.New("empty statement")
	}
	st.text = out.String()
	return st, nil
}

// skipQuoted returns the index after the literal or identifier opened by the
// quote q at src[i]. A doubled quote stands for itself; with backslash, a
// backslash escapes the next byte.
func skipQuoted(src string, i int, q byte, backslash bool) (int, error) {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(src) && src[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	what := "string literal"
	if q == '"' {
		what = "quoted identifier"
	}
	return 0, fmt.Errorf("unterminated %s opened at %s", what, lineCol(src, i))
}

// skipBlockComment returns the index after the comment opened at src[i]
// ("/*"); comments nest.
func skipBlockComment(src string, i int) (int, error) {
	depth := 0
	for j := i; j+1 < len(src); j++ {
		switch {
		case src[j] == '/' && src[j+1] == '*':
			depth++
			j++
		case src[j] == '*' && src[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated /* comment opened at %s", lineCol(src, i))
}

// skipDollarQuoted returns the index after the dollar-quoted string that tag
// ("$$" or "$tag$") opens at src[i].
func skipDollarQuoted(src string, i int, tag string) (int, error) {
	end := strings.Index(src[i+len(tag):], tag)
	if end < 0 {
		return 0, fmt.Errorf("unterminated dollar-quoted string %s opened at %s", tag, lineCol(src, i))
	}
	return i + len(tag) + end + len(tag), nil
}

// isIdentStart reports whether c starts an identifier or keyword (non-ASCII
// bytes included, as PostgreSQL does).
func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// isIdentChar reports whether c continues an identifier; '$' does.
func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// isTagChar reports whether c may appear in a placeholder name, a
// dollar-quote tag, or the number of a positional parameter.
func isTagChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits returns the leading digits of s.
func digits(s string) string {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return s[:n]
}

// lineCol describes the position of byte i of src as "line L, column C"
// (1-based, columns in bytes).
func lineCol(src string, i int) string {
	line := 1 + strings.Count(src[:i], "\n")
	col := i - strings.LastIndexByte(src[:i], '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
