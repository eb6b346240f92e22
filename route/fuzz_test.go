package route

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, returns a *ParseError on failure, and a
// template it accepts renders the sample event without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"helpdesk.{{.Type}}", "out/{{.TenantID}}/{{.Type}}.jsonl", "{{.Typ}}", "{{", "{{.}}", "{{$}}",
		`{{with .Type}}{{.}}{{else}}x{{end}}`, `{{range 3}}{{$.Type}}{{end}}`, `{{define "x"}}{{end}}`,
		`{{.Timestamp.Format "2006"}}`, `{{slice .StreamID 0 4}}`, `{{lower .TenantID}}`, "const",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tm, err := Parse(text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Msg == "" {
				t.Fatalf("error %v is not a *ParseError with a message", err)
			}
			return
		}
		got, err := tm.Render(event())
		if c, ok := tm.Constant(); ok && (got != c || err != nil || c == "") {
			t.Fatalf("constant %q rendered %q, %v", c, got, err)
		}
		if err == nil && got == "" {
			t.Fatal("empty name without an error")
		}
	})
}
