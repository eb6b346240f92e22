package esfake

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// mfield is a field of a mapping: an object (or nested) with properties, or
// a leaf of some type with optional multi-fields.
type mfield struct {
	typ             string             // "object", "nested" or a leaf type
	props           map[string]*mfield // object and nested
	fields          map[string]*mfield // multi-fields of a leaf
	params          obj                // parameters other than type/properties/fields, for output
	dynamic         string             // objects: "true", "false", "strict", "runtime"; "" inherits
	enabled         bool               // objects: false skips the contents
	format          string             // date and date_nanos
	ignoreMalformed *bool              // nil: the index setting decides
	coerce          bool
}

func (f *mfield) isObject() bool { return f.typ == "object" || f.typ == "nested" }

// rootMapping is an index's mapping.
type rootMapping struct {
	root               *mfield
	dateDetection      *bool
	numericDetection   *bool
	dynamicDateFormats []string // nil: the defaults
	extra              obj      // other root parameters (_source, _meta, dynamic_templates, ...), kept for output
}

// defaultDynamicDateFormats are RootObjectMapper's default
// dynamic_date_formats.
var defaultDynamicDateFormats = []string{"strict_date_optional_time", "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd"}

func newRootMapping() *rootMapping {
	return &rootMapping{root: &mfield{typ: "object", props: map[string]*mfield{}, enabled: true, coerce: true}}
}

func (rm *rootMapping) dateDetectionOn() bool { return rm.dateDetection == nil || *rm.dateDetection }
func (rm *rootMapping) numericDetectionOn() bool {
	return rm.numericDetection != nil && *rm.numericDetection
}

func (rm *rootMapping) dateFormats() []string {
	if rm.dynamicDateFormats != nil {
		return rm.dynamicDateFormats
	}
	return defaultDynamicDateFormats
}

// leafTypes are the field types the fake accepts in mappings. Values are
// checked for the types of dynamic mapping (text, keyword, long, float,
// boolean, date) and the other numeric types, ip and binary; the rest accept
// any value.
var leafTypes = map[string]bool{
	"text": true, "keyword": true, "match_only_text": true, "wildcard": true, "constant_keyword": true,
	"long": true, "integer": true, "short": true, "byte": true, "unsigned_long": true,
	"double": true, "float": true, "half_float": true, "scaled_float": true,
	"boolean": true, "date": true, "date_nanos": true, "ip": true, "binary": true, "version": true,
	"flattened": true, "geo_point": true, "geo_shape": true, "point": true, "shape": true,
	"completion": true, "search_as_you_type": true, "token_count": true, "dense_vector": true,
	"sparse_vector": true, "rank_feature": true, "rank_features": true, "alias": true, "join": true,
	"percolator": true, "integer_range": true, "float_range": true, "long_range": true,
	"double_range": true, "date_range": true, "ip_range": true, "histogram": true,
	"aggregate_metric_double": true, "semantic_text": true, "counted_keyword": true,
}

// errMapping is the error of an invalid mapping in a create index request.
func errMapping(msg string) *esError {
	e := newError(http.StatusBadRequest, "mapper_parsing_exception", "Failed to parse mapping: "+msg)
	e.cause = newError(http.StatusBadRequest, "mapper_parsing_exception", msg)
	return e
}

// parseRootMapping reads the "mappings" of a create index request.
func parseRootMapping(v *jvalue) (*rootMapping, *esError) {
	rm := newRootMapping()
	var unsupported []string
	for _, m := range v.members {
		switch m.key {
		case "properties":
			props, e := parseProperties(m.val, "")
			if e != nil {
				return nil, e
			}
			rm.root.props = props
		case "dynamic":
			rm.root.dynamic = dynamicValue(m.val)
			rm.root.params = append(rm.root.params, kv{"dynamic", rm.root.dynamic})
		case "date_detection":
			b := boolValue(m.val, true)
			rm.dateDetection = &b
		case "numeric_detection":
			b := boolValue(m.val, false)
			rm.numericDetection = &b
		case "dynamic_date_formats":
			rm.dynamicDateFormats = []string{}
			if m.val.kind == jString {
				rm.dynamicDateFormats = append(rm.dynamicDateFormats, m.val.s)
			}
			for _, e := range m.val.elems {
				rm.dynamicDateFormats = append(rm.dynamicDateFormats, e.s)
			}
		case "dynamic_templates", "_source", "_meta", "_routing", "runtime", "enabled", "subobjects",
			"_field_names", "_data_stream_timestamp", "_size", "date_formats":
			rm.extra = append(rm.extra, kv{m.key, jvalueTree(m.val)})
		default:
			unsupported = append(unsupported, fmt.Sprintf(" [%s : %s]", m.key, javaString(m.val)))
		}
	}
	if len(unsupported) > 0 {
		return nil, errMapping("Root mapping definition has unsupported parameters: " + strings.Join(unsupported, ""))
	}
	return rm, nil
}

func parseProperties(v *jvalue, parent string) (map[string]*mfield, *esError) {
	props := map[string]*mfield{}
	if v.kind != jObject {
		return props, nil
	}
	for _, m := range v.members {
		f, e := parseField(m.key, m.val)
		if e != nil {
			return nil, e
		}
		props[m.key] = f
	}
	return props, nil
}

// parseField reads one field definition of an explicit mapping.
func parseField(name string, v *jvalue) (*mfield, *esError) {
	if v.kind != jObject {
		return nil, errMapping(fmt.Sprintf("Expected map for property [fields] on field [%s] but got a class java.lang.%s", name, javaClass(v)))
	}
	typ := "object"
	if t := v.member("type"); t != nil {
		typ = t.s
		if t.kind != jString || (!leafTypes[typ] && typ != "object" && typ != "nested") {
			return nil, errMapping(fmt.Sprintf("No handler for type [%s] declared on field [%s]", javaString(t), name))
		}
	}
	f := &mfield{typ: typ, enabled: true, coerce: true}
	if f.isObject() {
		f.props = map[string]*mfield{}
	}
	for _, m := range v.members {
		switch m.key {
		case "type":
			continue
		case "properties":
			if f.isObject() {
				props, e := parseProperties(m.val, name)
				if e != nil {
					return nil, e
				}
				f.props = props
				continue
			}
		case "fields":
			if !f.isObject() && m.val.kind == jObject {
				f.fields = map[string]*mfield{}
				for _, sub := range m.val.members {
					sf, e := parseField(sub.key, sub.val)
					if e != nil {
						return nil, e
					}
					f.fields[sub.key] = sf
				}
				continue
			}
		case "dynamic":
			f.dynamic = dynamicValue(m.val)
			f.params = append(f.params, kv{"dynamic", f.dynamic})
			continue
		case "enabled":
			f.enabled = boolValue(m.val, true)
		case "format":
			f.format = m.val.s
		case "ignore_malformed":
			b := boolValue(m.val, false)
			f.ignoreMalformed = &b
		case "coerce":
			f.coerce = boolValue(m.val, true)
		}
		f.params = append(f.params, kv{m.key, jvalueTree(m.val)})
	}
	return f, nil
}

func javaClass(v *jvalue) string {
	switch v.kind {
	case jBool:
		return "Boolean"
	case jNumber:
		if v.isFloat() {
			return "Double"
		}
		return "Integer"
	case jArray:
		return "util.ArrayList"
	default:
		return "String"
	}
}

func boolValue(v *jvalue, def bool) bool {
	switch v.kind {
	case jBool:
		return v.b
	case jString:
		if b, err := strconv.ParseBool(v.s); err == nil {
			return b
		}
	}
	return def
}

func dynamicValue(v *jvalue) string {
	if v.kind == jBool {
		return strconv.FormatBool(v.b)
	}
	return v.s
}

// tree renders the mapping as GET _mapping shows it.
func (rm *rootMapping) tree() obj {
	o := append(obj{}, rm.extra...)
	o = append(o, rm.root.params...)
	if rm.dynamicDateFormats != nil {
		o = append(o, kv{"dynamic_date_formats", rm.dynamicDateFormats})
	}
	if rm.dateDetection != nil {
		o = append(o, kv{"date_detection", *rm.dateDetection})
	}
	if rm.numericDetection != nil {
		o = append(o, kv{"numeric_detection", *rm.numericDetection})
	}
	if len(rm.root.props) > 0 {
		o = append(o, kv{"properties", propsTree(rm.root.props)})
	}
	return o
}

func propsTree(props map[string]*mfield) obj {
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	o := make(obj, 0, len(names))
	for _, n := range names {
		o = append(o, kv{n, props[n].tree()})
	}
	return o
}

func (f *mfield) tree() obj {
	o := obj{}
	// Like ObjectMapper, "type": "object" only when there is no property to
	// tell it is an object.
	if f.typ != "object" || len(f.props) == 0 {
		o = append(o, kv{"type", f.typ})
	}
	o = append(o, f.params...)
	if f.isObject() && len(f.props) > 0 {
		o = append(o, kv{"properties", propsTree(f.props)})
	}
	if len(f.fields) > 0 {
		o = append(o, kv{"fields", propsTree(f.fields)})
	}
	return o
}

func (f *mfield) clone() *mfield {
	c := *f
	c.params = append(obj(nil), f.params...)
	if f.props != nil {
		c.props = make(map[string]*mfield, len(f.props))
		for k, v := range f.props {
			c.props[k] = v.clone()
		}
	}
	if f.fields != nil {
		c.fields = make(map[string]*mfield, len(f.fields))
		for k, v := range f.fields {
			c.fields[k] = v.clone()
		}
	}
	return &c
}

// fieldCount counts mapped fields as index.mapping.total_fields.limit does:
// objects, leaves and multi-fields.
func (f *mfield) fieldCount() int {
	n := 0
	for _, p := range f.props {
		n += 1 + p.fieldCount()
	}
	for _, sub := range f.fields {
		n += 1 + sub.fieldCount()
	}
	return n
}

// dynamicLeaf is the field dynamic mapping creates for a JSON value
// (nil for null), with date detection on strings.
func (rm *rootMapping) dynamicLeaf(v *jvalue) *mfield {
	f := &mfield{enabled: true, coerce: true}
	switch v.kind {
	case jBool:
		f.typ = "boolean"
	case jNumber:
		if v.isFloat() {
			f.typ = "float"
		} else {
			f.typ = "long"
		}
	case jString:
		_, errLong := strconv.ParseInt(v.s, 10, 64)
		isDouble := javaParseDoubleOK(v.s)
		switch {
		case errLong == nil && rm.numericDetectionOn():
			f.typ = "long"
		case isDouble && rm.numericDetectionOn():
			f.typ = "float"
		case errLong != nil && !isDouble && rm.dateDetectionOn():
			for _, format := range rm.dateFormats() {
				if parseDate(format, v.s) {
					f.typ = "date"
					if format != defaultDynamicDateFormats[0] {
						f.format = format
						f.params = obj{{"format", format}}
					}
					return f
				}
			}
		}
		if f.typ == "" {
			f.typ = "text"
			f.fields = map[string]*mfield{"keyword": {typ: "keyword", enabled: true, coerce: true, params: obj{{"ignore_above", 256}}}}
		}
	default:
		return nil
	}
	return f
}
