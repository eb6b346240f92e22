package marten

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// NewID returns a new time-ordered uuid in canonical text form, for event
// and stream ids. Marten generates event ids client-side with a sequential
// ("comb") Guid so that they sort roughly by creation time; NewID does the
// same with a version 7 uuid (RFC 9562): 48 bits of Unix milliseconds, 12
// bits of sub-millisecond time, 62 random bits from crypto/rand.
func NewID() string { return newIDAt(time.Now()) }

// newIDAt returns a version 7 uuid for time t.
func newIDAt(t time.Time) string {
	var u [16]byte
	_, _ = rand.Read(u[8:]) // never fails (crashes the program instead)
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[0:6], ms[2:8])
	// sub-millisecond fraction in 12 bits (RFC 9562 section 6.2, method 3)
	frac := uint32(t.Nanosecond()%int(time.Millisecond)) * 4096 / uint32(time.Millisecond)
	u[6] = 0x70 | byte(frac>>8)
	u[7] = byte(frac)
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return formatUUID(u)
}

// formatUUID formats u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// errBadUUID is returned by parseUUID.
var errBadUUID = errors.New("not a uuid in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")

// parseUUID parses the canonical text form of a uuid (either case).
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("%q: %w", s, errBadUUID)
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		if _, err := hex.Decode(u[j:j+1], []byte(s[i:i+2])); err != nil {
			return u, fmt.Errorf("%q: %w", s, errBadUUID)
		}
		i += 2
		j++
	}
	return u, nil
}
