package config

import (
	"errors"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Rules for names and scalar values.

var (
	pipelineNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	sinkNameRE     = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	slotNameRE     = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	identifierRE   = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

func checkPipelineName(s string) string {
	if !pipelineNameRE.MatchString(s) || len(s) > MaxPipelineNameLen {
		return "invalid pipeline name " + quote(s) + ": want a lower-case letter, then lower-case letters, digits or _, at most 40 in all"
	}
	return ""
}

func checkSinkName(s string) string {
	if !sinkNameRE.MatchString(s) {
		return "invalid sink name " + quote(s) + ": want a lower-case letter, then lower-case letters, digits, _ or -"
	}
	return ""
}

// checkSlotName checks a replication slot or publication name against
// PostgreSQL's rule for slot names.
func checkSlotName(what string) func(string) string {
	return func(s string) string {
		if !slotNameRE.MatchString(s) {
			return "invalid " + what + " name " + quote(s) + ": want 1 to 63 lower-case letters, digits or _"
		}
		return ""
	}
}

// checkIdentifier checks a schema name: an unquoted, lower-case PostgreSQL
// identifier, as Marten creates them.
func checkIdentifier(s string) string {
	if !identifierRE.MatchString(s) {
		return "invalid schema name " + quote(s) + ": want a lower-case letter or _, then lower-case letters, digits or _, at most 63 in all"
	}
	return ""
}

// checkGlob checks an event-type glob in path.Match syntax.
func checkGlob(s string) string {
	if s == "" {
		return "empty glob"
	}
	if _, err := path.Match(s, ""); err != nil {
		return "invalid glob " + quote(s) + ": " + err.Error() + " (path.Match syntax: * ? [a-z] \\)"
	}
	return ""
}

func checkTenant(s string) string {
	if s == "" {
		return "empty tenant id"
	}
	return ""
}

// sizeUnits are the suffixes parseSize accepts, with their multipliers.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

var errSize = errors.New("want a size like 4MiB, 512KiB, 1MB or 1000 (bytes)")

// parseSize parses a positive size in bytes: an integer, optionally followed
// (with or without a space) by B, kB/KB, MB, GB (powers of 1000) or KiB,
// MiB, GiB (powers of 1024).
func parseSize(s string) (int, error) {
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSuffix(n, " "), u.mult
			break
		}
	}
	if num == "" || num[0] < '0' || num[0] > '9' {
		return 0, errSize
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errors.New("size too large")
		}
		return 0, errSize
	}
	if n == 0 {
		return 0, errors.New("size must be greater than 0")
	}
	if n > math.MaxInt/mult {
		return 0, errors.New("size too large")
	}
	return int(n * mult), nil
}
