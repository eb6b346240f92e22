package route

import (
	"slices"
	"strings"
	"text/template/parse"
)

// checker walks a template's parse tree, records the event fields it
// references and finds references to anything else.
//
// root says whether dot is the event: it is outside {{with}} and {{range}}
// bodies, where dot is the value of their pipeline instead, whose fields are
// already recorded. $ is always the event.
type checker struct {
	used    uint32 // bit i: fieldNames[i] is referenced
	problem string // the first problem found
}

func (c *checker) fail(msg string) {
	if c.problem == "" {
		c.problem = msg
	}
}

func (c *checker) list(l *parse.ListNode, root bool) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		c.node(n, root)
	}
}

func (c *checker) node(n parse.Node, root bool) {
	switch n := n.(type) {
	case *parse.ActionNode:
		c.pipe(n.Pipe, root)
	case *parse.IfNode:
		c.pipe(n.Pipe, root)
		c.list(n.List, root)
		c.list(n.ElseList, root)
	case *parse.WithNode:
		c.pipe(n.Pipe, root)
		c.list(n.List, false)
		c.list(n.ElseList, root)
	case *parse.RangeNode:
		c.pipe(n.Pipe, root)
		c.list(n.List, false)
		c.list(n.ElseList, root)
	case *parse.ListNode:
		c.list(n, root)
	case *parse.TemplateNode:
		c.fail("{{template}} is not supported")
	}
	// TextNode, CommentNode, BreakNode, ContinueNode: nothing to check.
}

func (c *checker) pipe(p *parse.PipeNode, root bool) {
	if p == nil {
		return
	}
	for _, cmd := range p.Cmds {
		for _, arg := range cmd.Args {
			c.arg(arg, root)
		}
	}
}

func (c *checker) arg(n parse.Node, root bool) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if root {
			c.field(n.Ident[0])
		}
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			if len(n.Ident) == 1 {
				c.fail("$ is the whole event: name a field, e.g. {{$.Type}}")
			} else {
				c.field(n.Ident[1])
			}
		}
	case *parse.DotNode:
		if root {
			c.fail("{{.}} is the whole event: name a field, e.g. {{.Type}}")
		}
	case *parse.ChainNode:
		if _, dot := n.Node.(*parse.DotNode); dot && root {
			c.field(n.Field[0])
			return
		}
		c.arg(n.Node, root)
	case *parse.PipeNode:
		c.pipe(n, root)
	}
	// Identifiers (functions), constants: nothing to check.
}

// field records a reference to the event field called name.
func (c *checker) field(name string) {
	if i := slices.Index(fieldNames, name); i >= 0 {
		c.used |= 1 << i
		return
	}
	msg := "unknown field ." + name
	if s := suggest(name); s != "" {
		msg += " (did you mean ." + s + "?)"
	}
	c.fail(msg + "; the event fields are " + strings.Join(fieldNames, ", "))
}

// suggest returns the event field name closest to name, or "" if none is
// close: same letters in another case, or one edit away per three letters
// of name, at most two.
func suggest(name string) string {
	best, bestDist := "", min(max(len(name)/3, 1), 2)+1
	for _, f := range fieldNames {
		if strings.EqualFold(f, name) {
			return f
		}
		if d := distance(strings.ToLower(f), strings.ToLower(name)); d < bestDist {
			best, bestDist = f, d
		}
	}
	return best
}

// distance returns the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
