package esfake

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// kv is one field of an ordered JSON object.
type kv struct {
	k string
	v any
}

// obj is a JSON object that keeps its field order, as Elasticsearch's
// responses do. Response trees are built from obj, []any, string, bool,
// integers, float64, nil, rawJSON and *jvalue.
type obj []kv

// rawJSON is JSON text embedded as is (a document's _source).
type rawJSON []byte

// encodeJSON renders v compactly, or in Elasticsearch's pretty format.
func encodeJSON(v any, pretty bool) []byte {
	var b bytes.Buffer
	w := jwriter{b: &b, pretty: pretty}
	w.value(v, 0)
	if pretty {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

type jwriter struct {
	b      *bytes.Buffer
	pretty bool
}

func (w *jwriter) newline(depth int) {
	if w.pretty {
		w.b.WriteByte('\n')
		for i := 0; i < depth; i++ {
			w.b.WriteString("  ")
		}
	}
}

func (w *jwriter) value(v any, depth int) {
	switch t := v.(type) {
	case nil:
		w.b.WriteString("null")
	case obj:
		if len(t) == 0 {
			w.empty('{', '}')
			return
		}
		w.b.WriteByte('{')
		for i, f := range t {
			if i > 0 {
				w.b.WriteByte(',')
			}
			w.newline(depth + 1)
			writeJSONString(w.b, f.k)
			if w.pretty {
				w.b.WriteString(" : ")
			} else {
				w.b.WriteByte(':')
			}
			w.value(f.v, depth+1)
		}
		w.newline(depth)
		w.b.WriteByte('}')
	case []any:
		if len(t) == 0 {
			w.empty('[', ']')
			return
		}
		w.b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				w.b.WriteByte(',')
			}
			w.newline(depth + 1)
			w.value(e, depth+1)
		}
		w.newline(depth)
		w.b.WriteByte(']')
	case []string:
		a := make([]any, len(t))
		for i, s := range t {
			a[i] = s
		}
		w.value(a, depth)
	case string:
		writeJSONString(w.b, t)
	case bool:
		w.b.WriteString(strconv.FormatBool(t))
	case int:
		w.b.WriteString(strconv.Itoa(t))
	case int64:
		w.b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		w.b.WriteString(javaDouble(t))
	case rawJSON:
		if !w.pretty {
			w.b.Write(bytes.TrimSpace(t))
			return
		}
		jv, err := parseJSON(t)
		if err != nil {
			w.b.Write(bytes.TrimSpace(t))
			return
		}
		w.value(jv, depth)
	case *jvalue:
		w.value(jvalueTree(t), depth)
	case numLit:
		w.b.WriteString(string(t))
	default:
		panic(fmt.Sprintf("esfake: cannot encode %T", v))
	}
}

func (w *jwriter) empty(open, close byte) {
	w.b.WriteByte(open)
	if w.pretty {
		w.b.WriteByte(' ')
	}
	w.b.WriteByte(close)
}

// numLit is a JSON number kept as its literal text.
type numLit string

// jvalueTree converts a parsed value into a response tree, keeping number
// literals as they were written.
func jvalueTree(v *jvalue) any {
	switch v.kind {
	case jNull:
		return nil
	case jBool:
		return v.b
	case jNumber:
		return numLit(v.s)
	case jString:
		return v.s
	case jObject:
		o := make(obj, len(v.members))
		for i, m := range v.members {
			o[i] = kv{m.key, jvalueTree(m.val)}
		}
		return o
	default:
		a := make([]any, len(v.elems))
		for i, e := range v.elems {
			a[i] = jvalueTree(e)
		}
		return a
	}
}

// writeJSONString escapes s as Jackson does: quote, backslash and control
// characters only; everything else is written as UTF-8.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// javaDouble formats f as Java's Double.toString does (shortest digits,
// "1.0", "1.0E10", "1.0E-5").
func javaDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// javaNumber renders a JSON number literal as the Java object Jackson parses
// it into prints (Integer/Long/BigInteger, or Double).
func javaNumber(lit string) string {
	if strings.ContainsAny(lit, ".eE") {
		f, _ := strconv.ParseFloat(lit, 64) // ±Inf on overflow, as Java
		return javaDouble(f)
	}
	s := strings.TrimLeft(strings.TrimPrefix(lit, "-"), "0")
	if s == "" {
		return "0"
	}
	if strings.HasPrefix(lit, "-") {
		return "-" + s
	}
	return s
}

// javaString renders v as Java's toString of the object Elasticsearch reads
// it into (used in "Preview of field's value"): maps as {k=v, ...} in
// HashMap order, lists as [a, b].
func javaString(v *jvalue) string {
	switch v.kind {
	case jNull:
		return "null"
	case jBool:
		return strconv.FormatBool(v.b)
	case jNumber:
		return javaNumber(v.s)
	case jString:
		return v.s
	case jArray:
		parts := make([]string, len(v.elems))
		for i, e := range v.elems {
			parts[i] = javaString(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		keys := make([]string, len(v.members))
		for i, m := range v.members {
			keys[i] = m.key
		}
		parts := make([]string, 0, len(keys))
		for _, i := range javaHashMapOrder(keys) {
			parts = append(parts, v.members[i].key+"="+javaString(v.members[i].val))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
}

// javaHashMapOrder returns the indices of keys in the order a java.util.HashMap
// (default capacity, keys inserted in the given order) iterates them.
func javaHashMapOrder(keys []string) []int {
	size := 16
	for float64(len(keys)) > 0.75*float64(size) {
		size *= 2
	}
	bucket := func(k string) int {
		var h int32
		for _, u := range utf16.Encode([]rune(k)) {
			h = 31*h + int32(u)
		}
		spread := uint32(h) ^ (uint32(h) >> 16)
		return int(spread & uint32(size-1))
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return bucket(keys[idx[a]]) < bucket(keys[idx[b]]) })
	return idx
}
