package elastic

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// object is a JSON object being merged (RFC 7386 JSON merge patch). Its
// members keep their order and their values' text: a value is parsed only
// when a patch reaches into it, so numbers, strings and untouched objects
// are written back exactly as they were read.
type object struct {
	members []member
	byKey   map[string]int // key → index in members of its live member
}

// member is one member of an object: a raw value, or an object being
// merged.
type member struct {
	key  string // unescaped
	raw  []byte // the key as written, quotes included
	val  []byte // the value's JSON text, when obj is nil
	obj  *object
	gone bool // removed by a null
}

func newObject() *object { return &object{byKey: map[string]int{}} }

// errMalformed is the error of text that is not the JSON the merge expects.
var errMalformed = errors.New("malformed JSON object")

// parseObject returns the object raw holds. raw must be a valid JSON
// object; the checks are for the structure only.
func parseObject(raw []byte) (*object, error) {
	o := newObject()
	err := scanObject(raw, func(k, v []byte) error {
		key, err := unquote(k)
		if err != nil {
			return err
		}
		o.set(key, k, v, nil)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// set gives key the value val, or obj, in place if key is present.
func (o *object) set(key string, raw, val []byte, obj *object) {
	if i, ok := o.byKey[key]; ok {
		o.members[i].val, o.members[i].obj = val, obj
		return
	}
	o.byKey[key] = len(o.members)
	o.members = append(o.members, member{key: key, raw: raw, val: val, obj: obj})
}

// remove removes key.
func (o *object) remove(key string) {
	if i, ok := o.byKey[key]; ok {
		o.members[i] = member{gone: true}
		delete(o.byKey, key)
	}
}

// patch applies the merge patch raw, a valid JSON object: each member
// whose value is null removes the key, each object is merged into the
// member of the same key (an empty object when it is absent or not an
// object), and any other value replaces the member.
func (o *object) patch(raw []byte) error {
	return scanObject(raw, func(k, v []byte) error {
		key, err := unquote(k)
		if err != nil {
			return err
		}
		switch v[0] {
		case 'n':
			o.remove(key)
		case '{':
			var child *object
			if i, ok := o.byKey[key]; ok {
				m := &o.members[i]
				switch {
				case m.obj != nil:
					child = m.obj
				case m.val[0] == '{':
					if child, err = parseObject(m.val); err != nil {
						return err
					}
				}
			}
			if child == nil {
				child = newObject()
			}
			if err := child.patch(v); err != nil {
				return err
			}
			o.set(key, k, nil, child)
		default:
			o.set(key, k, v, nil)
		}
		return nil
	})
}

// size estimates the length of the object's text.
func (o *object) size() int {
	n := 2
	for i := range o.members {
		m := &o.members[i]
		if m.gone {
			continue
		}
		n += len(m.raw) + 2
		if m.obj != nil {
			n += m.obj.size()
		} else {
			n += len(m.val)
		}
	}
	return n
}

// appendMembers appends the object's members, without braces, skipping the
// keys skip reports (nil: none), each preceded by a comma when comma is
// set or it is not the first.
func (o *object) appendMembers(dst []byte, comma bool, skip func(string) bool) []byte {
	for i := range o.members {
		m := &o.members[i]
		if m.gone || skip != nil && skip(m.key) {
			continue
		}
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = append(dst, m.raw...)
		dst = append(dst, ':')
		if m.obj != nil {
			dst = m.obj.appendTo(dst)
		} else {
			dst = append(dst, m.val...)
		}
	}
	return dst
}

// appendTo appends the object's JSON text.
func (o *object) appendTo(dst []byte) []byte {
	dst = append(dst, '{')
	dst = o.appendMembers(dst, false, nil)
	return append(dst, '}')
}

// scanObject calls fn with the key (quoted, as written) and the value text
// of each member of the object raw, in order.
func scanObject(raw []byte, fn func(key, val []byte) error) error {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return errMalformed
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return nil
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return errMalformed
		}
		end := skipString(raw, i)
		if end < 0 {
			return errMalformed
		}
		key := raw[i:end]
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return errMalformed
		}
		i = skipSpace(raw, i+1)
		end = skipValue(raw, i)
		if end < 0 {
			return errMalformed
		}
		if err := fn(key, raw[i:end]); err != nil {
			return err
		}
		i = skipSpace(raw, end)
		if i >= len(raw) {
			return errMalformed
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			return nil
		default:
			return errMalformed
		}
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && isSpace(raw[i]) {
		i++
	}
	return i
}

// skipString returns the end of the string starting at raw[i] ('"'), or -1.
func skipString(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the end of the value starting at raw[i], or -1.
func skipValue(raw []byte, i int) int {
	if i >= len(raw) {
		return -1
	}
	switch raw[i] {
	case '"':
		return skipString(raw, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(raw); j++ {
			switch raw[j] {
			case '"':
				if j = skipString(raw, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(raw) && !isSpace(raw[j]) && raw[j] != ',' && raw[j] != '}' && raw[j] != ']' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// unquote returns the string a quoted JSON key stands for.
func unquote(k []byte) (string, error) {
	if len(k) < 2 {
		return "", errMalformed
	}
	if bytes.IndexByte(k, '\\') < 0 {
		return string(k[1 : len(k)-1]), nil
	}
	var s string
	if err := json.Unmarshal(k, &s); err != nil {
		return "", err
	}
	return s, nil
}

func appendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }
