package decoder

import (
	"fmt"
	"time"
)

// parseTimestamp parses timestamptz text as PostgreSQL prints it with
// DateStyle ISO: "2026-11-22 10:00:00.123456+00". It also takes a 'T'
// between date and time, 'Z' for +00, zone offsets of hours, hours and
// minutes or hours, minutes and seconds (with colons or without), years of
// more than four digits and a " BC" suffix. The result is in UTC.
//
// This replaces time.Parse on the hot path: no layout interpretation, no
// allocation, no location lookup.
func parseTimestamp(b []byte) (time.Time, error) {
	p := tsParser{b: b}
	year := p.digits(4, 9)
	p.expect('-')
	month := p.digits(2, 2)
	p.expect('-')
	day := p.digits(2, 2)
	if p.ok() && (p.b[p.i] == ' ' || p.b[p.i] == 'T') {
		p.i++
	} else {
		p.bad = true
	}
	hour := p.digits(2, 2)
	p.expect(':')
	minute := p.digits(2, 2)
	p.expect(':')
	second := p.digits(2, 2)
	var nsec int64
	if p.ok() && p.b[p.i] == '.' {
		p.i++
		start := p.i
		frac := p.digits(1, 9)
		for n := p.i - start; n < 9; n++ {
			frac *= 10
		}
		nsec = frac
	}
	var offset int64 // seconds east of UTC
	if p.ok() && p.b[p.i] == 'Z' {
		p.i++
	} else if p.ok() && (p.b[p.i] == '+' || p.b[p.i] == '-') {
		sign := int64(1)
		if p.b[p.i] == '-' {
			sign = -1
		}
		p.i++
		offset = p.digits(2, 2) * 3600
		// then optionally minutes and seconds, all with colons or none
		if p.ok() && p.b[p.i] == ':' {
			p.i++
			offset += p.digits(2, 2) * 60
			if p.ok() && p.b[p.i] == ':' {
				p.i++
				offset += p.digits(2, 2)
			}
		} else if p.ok() && isDigit(p.b[p.i]) {
			offset += p.digits(2, 2) * 60
			if p.ok() && isDigit(p.b[p.i]) {
				offset += p.digits(2, 2)
			}
		}
		offset *= sign
	} else {
		p.bad = true
	}
	if p.i+3 == len(p.b) && string(p.b[p.i:]) == " BC" {
		p.i += 3
		year = 1 - year // 1 BC is year 0
	}
	if p.bad || p.i != len(p.b) {
		return time.Time{}, fmt.Errorf("invalid timestamp %s", quote(b))
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 24 || minute > 59 || second > 60 || hour == 24 && (minute != 0 || second != 0 || nsec != 0) {
		return time.Time{}, fmt.Errorf("timestamp %s out of range", quote(b))
	}
	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + minute*60 + second - offset
	return time.Unix(secs, nsec).UTC(), nil
}

type tsParser struct {
	b   []byte
	i   int
	bad bool
}

// ok reports whether there is a byte to look at.
func (p *tsParser) ok() bool { return !p.bad && p.i < len(p.b) }

func (p *tsParser) expect(c byte) {
	if p.ok() && p.b[p.i] == c {
		p.i++
		return
	}
	p.bad = true
}

// digits reads between lo and hi decimal digits.
func (p *tsParser) digits(lo, hi int) int64 {
	if p.bad {
		return 0
	}
	var n int64
	start := p.i
	for p.i < len(p.b) && p.i-start < hi && isDigit(p.b[p.i]) {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	if p.i-start < lo {
		p.bad = true
	}
	return n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if isLeap(year) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the number of days from 1970-01-01 to the given date
// of the proleptic Gregorian calendar (astronomical year numbering), after
// Howard Hinnant's days_from_civil.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400 // [0, 399]
	mp := (m + 9) % 12 // March = 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
