package esfake

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// javaDoubleRe is the syntax java.lang.Double.parseDouble accepts (after
// trimming): decimal with optional exponent and type suffix, NaN, Infinity,
// or a hexadecimal floating point literal.
var javaDoubleRe = regexp.MustCompile(`^[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?)|(0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+[fFdD]?))$`)

// javaParseDouble parses s as Double.parseDouble does.
func javaParseDouble(s string) (float64, bool) {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	if !javaDoubleRe.MatchString(s) {
		return 0, false
	}
	switch strings.TrimLeft(s, "+-") {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		if strings.HasPrefix(s, "-") {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	if !strings.HasPrefix(strings.TrimLeft(s, "+-"), "0x") && !strings.HasPrefix(strings.TrimLeft(s, "+-"), "0X") {
		s = strings.TrimRight(s, "fFdD")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) {
		return 0, false
	}
	return f, true
}

func javaParseDoubleOK(s string) bool {
	_, ok := javaParseDouble(s)
	return ok
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// bigDecimalRe is the syntax of new java.math.BigDecimal(String).
var bigDecimalRe = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

var (
	minLong = big.NewInt(math.MinInt64)
	maxLong = big.NewInt(math.MaxInt64)
)

// stringToLong is Elasticsearch's Numbers.toLong(String, coerce=true):
// Long.parseLong, else the integer part of a BigDecimal.
func stringToLong(s string) (int64, *esError) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if !bigDecimalRe.MatchString(s) {
		return 0, errIllegalArgument("For input string: \"%s\"", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errIllegalArgument("For input string: \"%s\"", s)
	}
	i := new(big.Int).Quo(r.Num(), r.Denom()) // truncates toward zero
	if i.Cmp(minLong) < 0 || i.Cmp(maxLong) > 0 {
		return 0, errIllegalArgument("Value [%s] is out of range for a long", s)
	}
	return i.Int64(), nil
}

// intType describes an integer field type.
type intType struct {
	min, max int64
	jackson  string // Jackson's name in "out of range of <name>"
	article  string // "a long", "an integer", ...
}

var intTypes = map[string]intType{
	"long":    {math.MinInt64, math.MaxInt64, "long", "a long"},
	"integer": {math.MinInt32, math.MaxInt32, "int", "an integer"},
	"short":   {math.MinInt16, math.MaxInt16, "int", "a short"},
	"byte":    {math.MinInt8, math.MaxInt8, "int", "a byte"},
}

// javaFloatString formats f as Java's Float.toString or Double.toString.
func javaFloatString(f float64, bits int) string {
	if bits == 32 {
		s := javaDouble(f)
		if !math.IsInf(f, 0) && !math.IsNaN(f) && f != 0 {
			if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
				s = strconv.FormatFloat(f, 'f', -1, 32)
				if !strings.Contains(s, ".") {
					s += ".0"
				}
			} else {
				mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 32), "e")
				if !strings.Contains(mant, ".") {
					mant += ".0"
				}
				e, _ := strconv.Atoi(exp)
				s = mant + "E" + strconv.Itoa(e)
			}
		}
		return s
	}
	return javaDouble(f)
}
