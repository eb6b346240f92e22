package esfake

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// metadataFields are the fields a document may not carry at its root.
var metadataFields = map[string]bool{
	"_id": true, "_index": true, "_routing": true, "_source": true, "_version": true, "_seq_no": true,
	"_ignored": true, "_field_names": true, "_doc_count": true, "_tier": true, "_nested_path": true,
	"_data_stream_timestamp": true, "_tsid": true, "_ignored_source": true, "_feature": true,
}

// docParser checks a document against an index's mapping as Elasticsearch's
// DocumentParser does, adding dynamic fields to a working copy of the
// mapping that the caller commits only when the document is accepted.
type docParser struct {
	work    *rootMapping
	src     []byte
	id      string
	changed bool
	added   int
	limit   int  // index.mapping.total_fields.limit
	depth   int  // index.mapping.depth.limit
	lenient bool // index.mapping.ignore_malformed
}

func (rm *rootMapping) clone() *rootMapping {
	c := *rm
	c.root = rm.root.clone()
	return &c
}

func settingInt(ix *index, key string, def int) int {
	if v, ok := ix.settings[key]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// parseDoc checks src against the index mapping. It returns the mapping with
// the document's new dynamic fields when there are any (nil otherwise).
func (ix *index) parseDoc(id string, src []byte) (*rootMapping, *esError) {
	p := &docParser{
		work:    ix.mapping.clone(),
		src:     src,
		id:      id,
		limit:   settingInt(ix, "index.mapping.total_fields.limit", 1000),
		depth:   settingInt(ix, "index.mapping.depth.limit", 20),
		lenient: ix.settings["index.mapping.ignore_malformed"] == "true",
	}
	if len(bytes.TrimSpace(src)) == 0 {
		return nil, errDocumentParsing(src, 0, "failed to parse, document is empty", nil)
	}
	v, err := parseJSON(src)
	if err != nil {
		se := err.(*jsonSyntaxError)
		return nil, errDocumentParsing(src, se.off, "failed to parse: "+se.msg, errXContentParse(src, se.off, se.msg))
	}
	if v.kind != jObject {
		return nil, errDocumentParsing(src, v.start, "Malformed content, must start with an object", nil)
	}
	if e := p.object(p.work.root, "", effectiveDynamic(p.work.root.dynamic, "true"), v, true); e != nil {
		return nil, e
	}
	if !p.changed {
		return nil, nil
	}
	return p.work, nil
}

// failed wraps an exception as DocumentParser does: "[l:c] failed to parse: msg".
func (p *docParser) failed(off int, cause *esError) *esError {
	return errDocumentParsing(p.src, off, "failed to parse: "+cause.reason, cause)
}

func effectiveDynamic(own, inherited string) string {
	if own != "" {
		return own
	}
	return inherited
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func (p *docParser) object(m *mfield, path, dyn string, v *jvalue, atRoot bool) *esError {
	for _, mem := range v.members {
		name := mem.key
		if strings.TrimSpace(name) == "" {
			if name == "" {
				return errDocumentParsing(p.src, mem.keyStart, "field name cannot be an empty string", nil)
			}
			return p.failed(mem.keyStart, errIllegalArgument("field name cannot contain only whitespace: ['%s']", name))
		}
		if atRoot && metadataFields[name] {
			off := mem.val.start
			cause := errDocumentParsing(p.src, off, "Field ["+name+"] is a metadata field and cannot be added inside a document. Use the index API request parameters.", nil)
			return errDocumentParsing(p.src, off, fmt.Sprintf("failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'", name, name, p.id, javaString(mem.val)), cause)
		}
		segs := strings.Split(name, ".")
		for _, s := range segs {
			if strings.TrimSpace(s) == "" {
				return p.failed(mem.keyStart, errIllegalArgument("object field starting or ending with a [.] makes object resolution ambiguous: [%s]", name))
			}
		}
		parent, parentPath, parentDyn := m, path, dyn
		skip := false
		for _, seg := range segs[:len(segs)-1] {
			child := parent.props[seg]
			full := joinPath(parentPath, seg)
			switch {
			case child == nil:
				switch parentDyn {
				case "strict":
					return p.strict(mem.val.start, parentPath, seg)
				case "false", "runtime":
					skip = true
				default:
					if e := p.addObject(parent, full, seg, mem.val.start); e != nil {
						return e
					}
					child = parent.props[seg]
				}
			case !child.isObject():
				return p.failed(mem.keyStart, errIllegalArgument("Could not dynamically add mapping for field [%s]. Existing mapping for [%s] must be of type object but found [%s].", joinPath(path, name), full, child.typ))
			case !child.enabled:
				skip = true
			}
			if skip {
				break
			}
			parent, parentPath, parentDyn = child, full, effectiveDynamic(child.dynamic, parentDyn)
		}
		if skip {
			continue
		}
		if e := p.value(parent, parentPath, parentDyn, segs[len(segs)-1], mem.val); e != nil {
			return e
		}
	}
	return nil
}

func (p *docParser) strict(off int, parentPath, name string) *esError {
	within := parentPath
	if within == "" {
		within = "_doc"
	}
	return errDocumentParsing(p.src, off, fmt.Sprintf("mapping set to strict, dynamic introduction of [%s] within [%s] is not allowed", name, within), nil).withType("strict_dynamic_mapping_exception")
}

func (e *esError) withType(t string) *esError {
	e.typ = t
	return e
}

// addField records a dynamic field and enforces the total fields limit.
func (p *docParser) addField(parent *mfield, name string, f *mfield, off int) *esError {
	parent.props[name] = f
	p.changed = true
	p.added += 1 + len(f.fields)
	if p.work.root.fieldCount() > p.limit {
		return p.failed(off, errIllegalArgument("Limit of total fields [%d] has been exceeded while adding new fields [%d]", p.limit, p.added))
	}
	return nil
}

func (p *docParser) addObject(parent *mfield, full, name string, off int) *esError {
	if strings.Count(full, ".")+1 > p.depth {
		return p.failed(off, errIllegalArgument("Limit of mapping depth [%d] has been exceeded due to object field [%s]", p.depth, full))
	}
	return p.addField(parent, name, &mfield{typ: "object", props: map[string]*mfield{}, enabled: true, coerce: true}, off)
}

// value handles the value of field name in object parent.
func (p *docParser) value(parent *mfield, parentPath, dyn, name string, v *jvalue) *esError {
	full := joinPath(parentPath, name)
	f := parent.props[name]
	switch v.kind {
	case jNull:
		return nil
	case jArray:
		for _, e := range v.elems {
			if err := p.value(parent, parentPath, dyn, name, e); err != nil {
				return err
			}
		}
		return nil
	case jObject:
		if f == nil {
			switch dyn {
			case "strict":
				return p.strict(v.start, parentPath, name)
			case "false", "runtime":
				return nil
			}
			if e := p.addObject(parent, full, name, v.start); e != nil {
				return e
			}
			f = parent.props[name]
		}
		if f.isObject() {
			if !f.enabled {
				return nil
			}
			return p.object(f, full, effectiveDynamic(f.dynamic, dyn), v, false)
		}
		return p.leaf(f, full, v)
	default:
		if f == nil {
			switch dyn {
			case "strict":
				return p.strict(v.start, parentPath, name)
			case "false", "runtime":
				return nil
			}
			if e := p.addField(parent, name, p.work.dynamicLeaf(v), v.start); e != nil {
				return e
			}
			f = parent.props[name]
		}
		if f.isObject() {
			if !f.enabled {
				return nil
			}
			return errDocumentParsing(p.src, v.start, fmt.Sprintf("object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", full, name), nil)
		}
		return p.leaf(f, full, v)
	}
}

// leaf checks a value against a leaf field and its multi-fields.
func (p *docParser) leaf(f *mfield, full string, v *jvalue) *esError {
	if cause := p.leafCause(f, v); cause != nil {
		lenient := p.lenient
		if f.ignoreMalformed != nil {
			lenient = *f.ignoreMalformed
		}
		if lenient {
			return nil
		}
		off := v.start
		if v.kind == jObject || v.kind == jArray {
			off = v.end // the preview has read the whole value
		}
		return errDocumentParsing(p.src, off, fmt.Sprintf("failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'", full, f.typ, p.id, javaString(v)), cause)
	}
	for name, sub := range f.fields {
		if e := p.leaf(sub, full+"."+name, v); e != nil {
			return e
		}
	}
	return nil
}

func (p *docParser) loc(v *jvalue) string {
	l, c := location(p.src, v.start)
	return fmt.Sprintf("%d:%d", l, c)
}

func (p *docParser) notNumeric(v *jvalue) *esError {
	return errXContentParse(p.src, v.start, fmt.Sprintf("Current token (%s) not numeric, can not use numeric value accessors", v.tokenName()))
}

// leafCause returns why v cannot be indexed into f, or nil.
func (p *docParser) leafCause(f *mfield, v *jvalue) *esError {
	if v.kind == jObject && f.typ != "flattened" && leafTypes[f.typ] {
		switch f.typ {
		case "long", "integer", "short", "byte", "unsigned_long", "double", "float", "half_float", "scaled_float":
			return p.notNumeric(v)
		case "boolean":
			return errXContentParse(p.src, v.start, "Current token (START_OBJECT) not of boolean type")
		case "text", "keyword", "match_only_text", "wildcard", "constant_keyword", "search_as_you_type",
			"date", "date_nanos", "ip", "binary", "version":
			return errIllegalArgument("Expected text at %s but found START_OBJECT", p.loc(v))
		}
		return nil
	}
	switch f.typ {
	case "long", "integer", "short", "byte", "unsigned_long":
		return p.intCause(f, v)
	case "double", "float", "half_float", "scaled_float":
		return p.floatCause(f, v)
	case "boolean":
		switch v.kind {
		case jBool:
			return nil
		case jString:
			if v.s == "" || v.s == "true" || v.s == "false" {
				return nil
			}
			return errIllegalArgument("Failed to parse value [%s] as only [true] or [false] are allowed.", v.s)
		default:
			return errXContentParse(p.src, v.start, fmt.Sprintf("Current token (%s) not of boolean type", v.tokenName()))
		}
	case "date", "date_nanos":
		text := scalarText(v)
		format := f.format
		if format == "" {
			format = defaultDateFormat
		}
		if parseDate(format, text) {
			return nil
		}
		e := errIllegalArgument("failed to parse date field [%s] with format [%s]", text, format)
		e.cause = newError(http.StatusBadRequest, "date_time_parse_exception", "Failed to parse with all enclosed parsers")
		return e
	case "ip":
		if text := scalarText(v); net.ParseIP(text) == nil {
			return errIllegalArgument("'%s' is not an IP string literal.", text)
		}
	case "binary":
		if v.kind == jString {
			if _, err := base64.StdEncoding.DecodeString(v.s); err != nil {
				return errXContentParse(p.src, v.start, "Failed to decode VALUE_STRING as base64 (MIME-NO-LINEFEEDS): "+err.Error())
			}
		}
	}
	return nil
}

// scalarText is XContentParser.text() of a scalar.
func scalarText(v *jvalue) string {
	switch v.kind {
	case jBool:
		return strconv.FormatBool(v.b)
	default:
		return v.s
	}
}

func (p *docParser) intCause(f *mfield, v *jvalue) *esError {
	if f.typ == "unsigned_long" {
		return p.unsignedCause(v)
	}
	t := intTypes[f.typ]
	switch v.kind {
	case jString:
		if v.s == "" {
			return nil
		}
		if f.typ == "long" {
			_, e := stringToLong(v.s)
			return e
		}
		d, ok := javaParseDouble(v.s)
		if !ok {
			return newError(http.StatusBadRequest, "number_format_exception", fmt.Sprintf("For input string: \"%s\"", v.s))
		}
		if d < float64(t.min) || d > float64(t.max) {
			return errIllegalArgument("Value [%s] is out of range for %s", v.s, t.article)
		}
		return nil
	case jNumber:
		jmin, jmax := int64(math.MinInt64), int64(math.MaxInt64)
		if t.jackson == "int" {
			jmin, jmax = math.MinInt32, math.MaxInt32
		}
		var n *big.Int
		if v.isFloat() {
			d, _ := strconv.ParseFloat(v.s, 64) // ±Inf on overflow
			if !f.coerce && d != math.Trunc(d) {
				return errIllegalArgument("Value [%s] has a decimal part", javaNumber(v.s))
			}
			if math.IsInf(d, 0) || math.Abs(d) > 1e30 {
				n = new(big.Int).Lsh(big.NewInt(int64(math.Copysign(1, d))), 100)
			} else {
				n, _ = new(big.Float).SetFloat64(math.Trunc(d)).Int(nil)
			}
		} else {
			n, _ = new(big.Int).SetString(v.s, 10)
		}
		if n.Cmp(big.NewInt(jmin)) < 0 || n.Cmp(big.NewInt(jmax)) > 0 {
			return errXContentParse(p.src, v.start, fmt.Sprintf("Numeric value (%s) out of range of %s (%d - %d)", javaNumber(v.s), t.jackson, jmin, jmax))
		}
		if n.Cmp(big.NewInt(t.min)) < 0 || n.Cmp(big.NewInt(t.max)) > 0 {
			return errIllegalArgument("Value [%s] is out of range for %s", javaNumber(v.s), t.article)
		}
		return nil
	default:
		return p.notNumeric(v)
	}
}

func (p *docParser) floatCause(f *mfield, v *jvalue) *esError {
	bits := 32
	if f.typ == "double" || f.typ == "scaled_float" {
		bits = 64
	}
	var d float64
	switch v.kind {
	case jString:
		if v.s == "" {
			return nil
		}
		var ok bool
		if d, ok = javaParseDouble(v.s); !ok {
			return newError(http.StatusBadRequest, "number_format_exception", fmt.Sprintf("For input string: \"%s\"", v.s))
		}
	case jNumber:
		d, _ = strconv.ParseFloat(v.s, 64)
	default:
		return p.notNumeric(v)
	}
	if bits == 32 {
		d = float64(float32(d))
	}
	if f.typ == "half_float" && math.Abs(d) > 65504 {
		d = math.Inf(int(math.Copysign(1, d)))
	}
	if math.IsInf(d, 0) || math.IsNaN(d) {
		return errIllegalArgument("[%s] supports only finite values, but got [%s]", f.typ, javaFloatString(d, bits))
	}
	return nil
}

// maxUnsignedLong is 2^64-1.
var maxUnsignedLong = new(big.Int).SetUint64(math.MaxUint64)

// unsignedCause checks a value for an unsigned_long field.
func (p *docParser) unsignedCause(v *jvalue) *esError {
	if v.kind != jString && v.kind != jNumber {
		return p.notNumeric(v)
	}
	if v.s == "" {
		return nil
	}
	r, ok := new(big.Rat).SetString(v.s)
	if !ok || !bigDecimalRe.MatchString(v.s) {
		return errIllegalArgument("For input string: \"%s\"", v.s)
	}
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if n.Sign() < 0 || n.Cmp(maxUnsignedLong) > 0 {
		return errIllegalArgument("Value [%s] is out of range for unsigned_long", v.s)
	}
	return nil
}
