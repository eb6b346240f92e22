package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File string // file name as given to Parse
	Line int    // 1-based line of the offending key or value; 0 if unknown
	Path string // key path like "pipelines[0].sinks[1].batch.max_events"; "" for the whole file
	Msg  string // what is wrong; never contains a DSN or password
}

// String formats the problem as "file:line: path: msg", leaving out the
// line when it is unknown and the path when it is empty.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is the error returned by [Parse]: every problem found in the file,
// ordered by line. Callers print it and exit with status 2.
type Error struct {
	Problems []Problem // at least one
}

// Error returns the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
