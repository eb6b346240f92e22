package esfake

import (
	"regexp"
	"strconv"
	"strings"
)

// defaultDateFormat is the format of a date field without one.
const defaultDateFormat = "strict_date_optional_time||epoch_millis"

// parseDate reports whether s parses with an Elasticsearch date format
// ("a||b" tries each). The built-in ISO and epoch formats and Java patterns
// made of y M d H h m s S a X Z and literals are checked; a pattern the fake
// cannot read (optional sections, week dates, ...) accepts any value.
func parseDate(format, s string) bool {
	for _, f := range strings.Split(format, "||") {
		if parseOneDate(strings.TrimSpace(f), s) {
			return true
		}
	}
	return false
}

var epochRe = regexp.MustCompile(`^-?\d+(\.\d+)?$`)

func parseOneDate(format, s string) bool {
	switch strings.TrimPrefix(format, "8") {
	case "strict_date_optional_time", "strict_date_optional_time_nanos":
		return isoDate(s, true)
	case "date_optional_time", "iso8601":
		return isoDate(s, false)
	case "epoch_millis", "epoch_second":
		return epochRe.MatchString(s)
	case "strict_date", "date":
		return javaPattern("yyyy-MM-dd", s)
	case "strict_date_time", "date_time":
		return javaPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", s) || javaPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXX", s)
	case "strict_date_time_no_millis", "date_time_no_millis":
		return javaPattern("yyyy-MM-dd'T'HH:mm:ssXXX", s) || javaPattern("yyyy-MM-dd'T'HH:mm:ssXX", s)
	case "strict_date_hour_minute_second", "date_hour_minute_second":
		return javaPattern("yyyy-MM-dd'T'HH:mm:ss", s)
	case "strict_date_hour_minute_second_millis", "date_hour_minute_second_millis":
		return javaPattern("yyyy-MM-dd'T'HH:mm:ss.SSS", s)
	case "basic_date":
		return javaPattern("yyyyMMdd", s)
	case "strict_year_month", "year_month":
		return javaPattern("yyyy-MM", s)
	case "strict_year", "year":
		return javaPattern("yyyy", s)
	}
	if strings.ContainsAny(format, "[]{}#") || strings.HasPrefix(format, "strict_") || strings.HasPrefix(format, "basic_") ||
		strings.Contains(format, "_") {
		return true
	}
	return javaPattern(format, s)
}

// isoDate parses yyyy[-MM[-dd]][THH[:mm[:ss[.fraction]]][zone]]; strict
// wants two-digit fields and a four-digit year.
func isoDate(s string, strict bool) bool {
	r := dateReader{s: s}
	yMin, yMax := 4, 4
	fMin := 2
	if !strict {
		yMin, yMax, fMin = 1, 9, 1
	}
	year, ok := r.num(yMin, yMax)
	if !ok {
		return false
	}
	month, day := 1, 1
	if r.lit("-") {
		if month, ok = r.num(fMin, 2); !ok || month < 1 || month > 12 {
			return false
		}
		if r.lit("-") {
			if day, ok = r.num(fMin, 2); !ok || day < 1 || day > daysIn(year, month) {
				return false
			}
		}
	}
	if r.lit("T") {
		if !r.time(fMin) {
			return false
		}
		r.zone()
	}
	return r.done()
}

type dateReader struct {
	s string
	i int
}

func (r *dateReader) done() bool { return r.i == len(r.s) }

func (r *dateReader) lit(l string) bool {
	if strings.HasPrefix(r.s[r.i:], l) {
		r.i += len(l)
		return true
	}
	return false
}

func (r *dateReader) num(min, max int) (int, bool) {
	j := r.i
	for j < len(r.s) && j-r.i < max && r.s[j] >= '0' && r.s[j] <= '9' {
		j++
	}
	if j-r.i < min {
		return 0, false
	}
	n, err := strconv.Atoi(r.s[r.i:j])
	r.i = j
	return n, err == nil
}

// time reads HH[:mm[:ss[.fraction]]].
func (r *dateReader) time(fMin int) bool {
	if h, ok := r.num(fMin, 2); !ok || h > 23 {
		return false
	}
	if r.lit(":") {
		if m, ok := r.num(fMin, 2); !ok || m > 59 {
			return false
		}
		if r.lit(":") {
			if sec, ok := r.num(fMin, 2); !ok || sec > 59 {
				return false
			}
			if r.lit(".") || r.lit(",") {
				if _, ok := r.num(1, 9); !ok {
					return false
				}
			}
		}
	}
	return true
}

// zone reads Z, ±HH, ±HHmm or ±HH:mm if present.
func (r *dateReader) zone() bool {
	if r.lit("Z") {
		return true
	}
	if !r.lit("+") && !r.lit("-") {
		return false
	}
	if h, ok := r.num(2, 2); !ok || h > 18 {
		return false
	}
	r.lit(":")
	if r.i < len(r.s) {
		if m, ok := r.num(2, 2); !ok || m > 59 {
			return false
		}
	}
	return true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

var monthNames = []string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}

// javaPattern matches s against a java.time pattern.
func javaPattern(pattern, s string) bool {
	r := dateReader{s: s}
	year, month, day := 2000, 1, 1
	for i := 0; i < len(pattern); {
		c := pattern[i]
		j := i
		for j < len(pattern) && pattern[j] == c {
			j++
		}
		n := j - i
		switch {
		case c == '\'':
			end := strings.IndexByte(pattern[i+1:], '\'')
			if end < 0 {
				return true
			}
			if !r.lit(pattern[i+1 : i+1+end]) {
				return false
			}
			i += end + 2
			continue
		case c == 'y' || c == 'u' || c == 'Y':
			lo, hi := n, 9
			if n == 2 {
				hi = 2
			}
			v, ok := r.num(lo, hi)
			if !ok {
				return false
			}
			year = v
		case c == 'M' || c == 'L':
			if n >= 3 {
				if month = r.monthName(n); month == 0 {
					return false
				}
			} else {
				v, ok := r.num(n, 2)
				if !ok || v < 1 || v > 12 {
					return false
				}
				month = v
			}
		case c == 'd':
			v, ok := r.num(n, 2)
			if !ok || v < 1 || v > 31 {
				return false
			}
			day = v
		case c == 'H' || c == 'k' || c == 'h' || c == 'K' || c == 'm' || c == 's':
			limit := map[byte]int{'H': 23, 'k': 24, 'h': 12, 'K': 11, 'm': 59, 's': 59}[c]
			v, ok := r.num(n, 2)
			if !ok || v > limit {
				return false
			}
		case c == 'S' || c == 'n':
			if _, ok := r.num(n, max(n, 9)); !ok {
				return false
			}
		case c == 'a':
			if !r.lit("AM") && !r.lit("PM") && !r.lit("am") && !r.lit("pm") {
				return false
			}
		case c == 'X' || c == 'x' || c == 'Z':
			if !r.zone() {
				return false
			}
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return true // a field the fake does not read
		default:
			if !r.lit(pattern[i:j]) {
				return false
			}
		}
		i = j
	}
	return r.done() && day <= daysIn(year, month)
}

func (r *dateReader) monthName(n int) int {
	rest := strings.ToLower(r.s[r.i:])
	for i, name := range monthNames {
		if n == 3 && strings.HasPrefix(rest, name[:3]) {
			r.i += 3
			return i + 1
		}
		if n > 3 && strings.HasPrefix(rest, name) {
			r.i += len(name)
			return i + 1
		}
	}
	return 0
}
