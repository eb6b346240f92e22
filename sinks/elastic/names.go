package elastic

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxIndexLen is the longest index name Elasticsearch accepts, in bytes.
const maxIndexLen = 255

// maxIDLen is the longest document _id Elasticsearch accepts, in bytes.
const maxIDLen = 512

// errInvalidIndex is wrapped by the errors about an index name that
// Elasticsearch refuses.
var errInvalidIndex = errors.New("invalid Elasticsearch index name")

// checkIndex reports whether Elasticsearch accepts name as an index name:
// lowercase, 1 to 255 bytes, none of \ / * ? " < > | , # : or space, not
// starting with -, _ or +, not "." or "..".
func checkIndex(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%s %s: %w", quote(name), why, errInvalidIndex)
	}
	switch {
	case name == "":
		return bad("is empty")
	case len(name) > maxIndexLen:
		return bad(fmt.Sprintf("is longer than %d bytes", maxIndexLen))
	case name == "." || name == "..":
		return bad(`may not be "." or ".."`)
	case strings.ContainsAny(name[:1], "-_+"):
		return bad("may not start with '-', '_' or '+'")
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return bad(`may not contain \ / * ? " < > | , # : or spaces`)
	case strings.ToLower(name) != name:
		return bad("must be lowercase")
	}
	if err := quotable(name); err != nil {
		return bad(err.Error())
	}
	return nil
}

// checkID reports whether id can be a document _id: 1 to 512 bytes that
// the bulk indexer can quote (see quotable).
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("empty document _id")
	case len(id) > maxIDLen:
		return fmt.Errorf("document _id %s is longer than %d bytes", quote(id), maxIDLen)
	}
	if err := quotable(id); err != nil {
		return fmt.Errorf("document _id %s %v", quote(id), err)
	}
	return nil
}

// quotable reports whether s is quoted as valid JSON by the bulk indexer,
// which writes _index and _id with strconv.Quote (Go syntax): it must be
// valid UTF-8 without control characters nor non-printable characters
// beyond U+FFFF, which Go quotes as \x.., \a, \v or \U........
func quotable(s string) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return errors.New("is not valid UTF-8")
		case r < 0x20 || r == 0x7f:
			return errors.New("contains a control character")
		case r > 0xFFFF && !strconv.IsPrint(r):
			return fmt.Errorf("contains the non-printable character %U", r)
		}
		i += n
	}
	return nil
}

// quote quotes s for a message, cut to 300 bytes.
func quote(s string) string {
	const maxQuoted = 300
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}
