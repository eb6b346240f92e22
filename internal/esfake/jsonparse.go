package esfake

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jkind is the kind of a parsed JSON value.
type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

// jvalue is a JSON value parsed with byte offsets and key order, which
// Elasticsearch's messages depend on: "[line:col]" locations, value previews
// and the order of fields in a merged _source.
type jvalue struct {
	kind    jkind
	b       bool
	s       string // a string's value, or a number's literal text
	members []jmember
	elems   []*jvalue
	start   int // offset of the value's first byte
	end     int // offset of a container's closing '}' or ']'; start otherwise
}

// jmember is one field of a JSON object.
type jmember struct {
	key      string
	keyStart int
	val      *jvalue
}

// member returns the value of the field named key, or nil.
func (v *jvalue) member(key string) *jvalue {
	if v == nil || v.kind != jObject {
		return nil
	}
	for _, m := range v.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// isFloat reports whether a number literal is a floating point number for
// Jackson (it has a fraction or an exponent).
func (v *jvalue) isFloat() bool {
	for i := 0; i < len(v.s); i++ {
		switch v.s[i] {
		case '.', 'e', 'E':
			return true
		}
	}
	return false
}

// tokenName is Jackson's name for the token that starts v.
func (v *jvalue) tokenName() string {
	switch v.kind {
	case jNull:
		return "VALUE_NULL"
	case jBool:
		if v.b {
			return "VALUE_TRUE"
		}
		return "VALUE_FALSE"
	case jNumber:
		if v.isFloat() {
			return "VALUE_NUMBER_FLOAT"
		}
		return "VALUE_NUMBER_INT"
	case jString:
		return "VALUE_STRING"
	case jObject:
		return "START_OBJECT"
	default:
		return "START_ARRAY"
	}
}

// jsonSyntaxError is a JSON syntax error at a byte offset, worded like
// Jackson's.
type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string { return e.msg }

// maxJSONDepth is Jackson's default StreamReadConstraints nesting limit.
const maxJSONDepth = 1000

type jparser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSON parses exactly one JSON value (with the comments Elasticsearch's
// parser allows) and nothing after it but whitespace.
func parseJSON(data []byte) (*jvalue, error) {
	p := &jparser{data: data}
	if err := p.skipSpace(); err != nil {
		return nil, err
	}
	if p.pos >= len(data) {
		return nil, &jsonSyntaxError{off: p.pos, msg: "No content to map due to end-of-input"}
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.skipSpace(); err != nil {
		return nil, err
	}
	if p.pos < len(data) {
		return nil, p.unexpected("expected end of input")
	}
	return v, nil
}

// skipSpace skips whitespace and comments (/* */ and //), which
// Elasticsearch's JSON parser accepts.
func (p *jparser) skipSpace() error {
	for p.pos < len(p.data) {
		switch c := p.data[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case c == '/' && p.pos+1 < len(p.data) && p.data[p.pos+1] == '/':
			for p.pos < len(p.data) && p.data[p.pos] != '\n' {
				p.pos++
			}
		case c == '/' && p.pos+1 < len(p.data) && p.data[p.pos+1] == '*':
			start := p.pos
			p.pos += 2
			for {
				if p.pos+1 >= len(p.data) {
					return &jsonSyntaxError{off: start, msg: "Unexpected end-of-input in a comment"}
				}
				if p.data[p.pos] == '*' && p.data[p.pos+1] == '/' {
					p.pos += 2
					break
				}
				p.pos++
			}
		default:
			return nil
		}
	}
	return nil
}

func (p *jparser) unexpected(expecting string) error {
	r, _ := utf8.DecodeRune(p.data[p.pos:])
	return &jsonSyntaxError{off: p.pos, msg: fmt.Sprintf("Unexpected character ('%c' (code %d)): %s", r, r, expecting)}
}

func (p *jparser) eof(what string) error {
	return &jsonSyntaxError{off: p.pos, msg: "Unexpected end-of-input: " + what}
}

func (p *jparser) value() (*jvalue, error) {
	if p.pos >= len(p.data) {
		return nil, p.eof("expected a value")
	}
	start := p.pos
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jvalue{kind: jString, s: s, start: start, end: start}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		word := p.word()
		switch word {
		case "true", "false":
			return &jvalue{kind: jBool, b: word == "true", start: start, end: start}, nil
		case "null":
			return &jvalue{kind: jNull, start: start, end: start}, nil
		}
		if word == "" {
			return nil, p.unexpected("expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')")
		}
		return nil, &jsonSyntaxError{off: start, msg: fmt.Sprintf("Unrecognized token '%s': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", word)}
	}
}

// word consumes a run of letters, digits and underscores, as Jackson does
// when it reports an unrecognized token.
func (p *jparser) word() string {
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 {
			p.pos++
			continue
		}
		break
	}
	return string(p.data[start:p.pos])
}

func (p *jparser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return &jsonSyntaxError{off: p.pos, msg: fmt.Sprintf("Document nesting depth (%d) exceeds the maximum allowed (%d, from `StreamReadConstraints.getMaxNestingDepth()`)", p.depth, maxJSONDepth)}
	}
	return nil
}

func (p *jparser) object() (*jvalue, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	v := &jvalue{kind: jObject, start: p.pos}
	p.pos++ // {
	seen := map[string]bool{}
	for i := 0; ; i++ {
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.pos >= len(p.data) {
			return nil, p.eof("expected close marker for Object")
		}
		if p.data[p.pos] == '}' && i == 0 {
			v.end = p.pos
			p.pos++
			return v, nil
		}
		if i > 0 {
			switch p.data[p.pos] {
			case '}':
				v.end = p.pos
				p.pos++
				return v, nil
			case ',':
				p.pos++
				if err := p.skipSpace(); err != nil {
					return nil, err
				}
				if p.pos >= len(p.data) {
					return nil, p.eof("expected close marker for Object")
				}
			default:
				return nil, p.unexpected("was expecting comma to separate Object entries")
			}
		}
		if p.data[p.pos] != '"' {
			return nil, p.unexpected("was expecting double-quote to start field name")
		}
		keyStart := p.pos
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, &jsonSyntaxError{off: keyStart, msg: fmt.Sprintf("Duplicate field '%s'", key)}
		}
		seen[key] = true
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.pos >= len(p.data) {
			return nil, p.eof("expected a colon to separate field name and value")
		}
		if p.data[p.pos] != ':' {
			return nil, p.unexpected("was expecting a colon to separate field name and value")
		}
		p.pos++
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, jmember{key: key, keyStart: keyStart, val: val})
	}
}

func (p *jparser) array() (*jvalue, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	v := &jvalue{kind: jArray, start: p.pos}
	p.pos++ // [
	for i := 0; ; i++ {
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.pos >= len(p.data) {
			return nil, p.eof("expected close marker for Array")
		}
		if p.data[p.pos] == ']' {
			v.end = p.pos
			p.pos++
			return v, nil
		}
		if i > 0 {
			if p.data[p.pos] != ',' {
				return nil, p.unexpected("was expecting comma to separate Array entries")
			}
			p.pos++
			if err := p.skipSpace(); err != nil {
				return nil, err
			}
		}
		e, err := p.value()
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, e)
	}
}

func (p *jparser) number() (*jvalue, error) {
	start := p.pos
	d := p.data
	i := p.pos
	if d[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intStart := i
	n := digits()
	if n == 0 {
		p.pos = i
		if i >= len(d) {
			return nil, p.eof("expected digit (0-9) to follow minus sign, for valid numeric value")
		}
		return nil, p.unexpected("expected digit (0-9) to follow minus sign, for valid numeric value")
	}
	if n > 1 && d[intStart] == '0' {
		return nil, &jsonSyntaxError{off: start, msg: "Invalid numeric value: Leading zeroes not allowed"}
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			p.pos = i
			return nil, &jsonSyntaxError{off: i, msg: "Unexpected character: Decimal point not followed by a digit"}
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return nil, &jsonSyntaxError{off: i, msg: "Unexpected character: Exponent indicator not followed by a digit"}
		}
	}
	p.pos = i
	if i < len(d) && (d[i] >= 'a' && d[i] <= 'z' || d[i] >= 'A' && d[i] <= 'Z' || d[i] == '_') {
		return nil, p.unexpected("Expected space separating root-level values")
	}
	return &jvalue{kind: jNumber, s: string(d[start:i]), start: start, end: start}, nil
}

// str parses a JSON string starting at the opening quote.
func (p *jparser) str() (string, error) {
	p.pos++ // "
	d := p.data
	var out []byte
	segStart := p.pos
	for {
		if p.pos >= len(d) {
			return "", p.eof("was expecting closing quote for a string value")
		}
		c := d[p.pos]
		switch {
		case c == '"':
			s := string(append(out, d[segStart:p.pos]...))
			p.pos++
			return s, nil
		case c < 0x20:
			return "", &jsonSyntaxError{off: p.pos, msg: fmt.Sprintf("Illegal unquoted character ((CTRL-CHAR, code %d)): has to be escaped using backslash to be included in string value", c)}
		case c == '\\':
			out = append(out, d[segStart:p.pos]...)
			if p.pos+1 >= len(d) {
				p.pos++
				return "", p.eof("was expecting closing quote for a string value")
			}
			e := d[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) && p.pos+1 < len(d) && d[p.pos] == '\\' && d[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					r2, err := p.hex4()
					if err == nil && utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
					} else {
						p.pos = save
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", &jsonSyntaxError{off: p.pos - 1, msg: fmt.Sprintf("Unrecognized character escape '%c' (code %d)", e, e)}
			}
			segStart = p.pos
		default:
			p.pos++
		}
	}
}

func (p *jparser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.eof("was expecting closing quote for a string value")
	}
	n, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, &jsonSyntaxError{off: p.pos, msg: "Unexpected character: expected a hex-digit for character escape sequence"}
	}
	p.pos += 4
	return rune(n), nil
}

// location returns Jackson's 1-based line and column (in bytes) of offset
// off in data.
func location(data []byte, off int) (line, col int) {
	line, lineStart := 1, 0
	for i := 0; i < off && i < len(data); i++ {
		if data[i] == '\n' {
			line++
			lineStart = i + 1
		}
	}
	return line, off - lineStart + 1
}

// locPrefix is the "[line:col] " prefix of Elasticsearch's parsing errors.
func locPrefix(data []byte, off int) string {
	l, c := location(data, off)
	return fmt.Sprintf("[%d:%d] ", l, c)
}
