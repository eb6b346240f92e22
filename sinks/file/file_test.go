package file

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
	"github.com/martencdc/cdc/route"
)

func ev(id, tenant, typ string) *cdc.Event {
	return &cdc.Event{ID: id, StreamID: "s-" + id, Version: 1, Type: typ, TenantID: tenant, Data: []byte(`{"n":"` + id + `"}`), LSN: 0x10}
}

// lines returns the envelopes of events, one line each.
func lines(events ...*cdc.Event) string {
	var b []byte
	for _, e := range events {
		b = envelope.Append(b, e)
		b = append(b, '\n')
	}
	return string(b)
}

func newSink(t *testing.T, text string, dir string) *Sink {
	t.Helper()
	s, err := New(Config{Path: route.MustParse(text), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// files returns the contents of every file under dir by slash path.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		got[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func equalFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got[name], w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected file %s:\n%s", name, got[name])
		}
	}
}

// TestWriteGroupsByPath: each event lands in the file its tenant and type
// name, in batch order, and the files hold exactly those lines once Write
// returns.
func TestWriteGroupsByPath(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, "out/{{.TenantID}}/{{.Type}}.jsonl", dir)
	e := []*cdc.Event{
		ev("1", "acme", "logged"),
		ev("2", "globex", "logged"),
		ev("3", "acme", "closed"),
		ev("4", "acme", "logged"),
		ev("5", "globex", "logged"),
		ev("6", "acme", "logged"),
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: e[:4]}); err != nil {
		t.Fatal(err)
	}
	equalFiles(t, files(t, dir), map[string]string{
		"out/acme/logged.jsonl":   lines(e[0], e[3]),
		"out/acme/closed.jsonl":   lines(e[2]),
		"out/globex/logged.jsonl": lines(e[1]),
	})
	if err := s.Write(context.Background(), cdc.Batch{Events: e[4:]}); err != nil {
		t.Fatal(err)
	}
	equalFiles(t, files(t, dir), map[string]string{
		"out/acme/logged.jsonl":   lines(e[0], e[3], e[5]),
		"out/acme/closed.jsonl":   lines(e[2]),
		"out/globex/logged.jsonl": lines(e[1], e[4]),
	})
	for _, h := range s.files {
		if h.dirty {
			t.Errorf("%s not synced", h.path)
		}
	}
	if err := s.Write(context.Background(), cdc.Batch{}); err != nil {
		t.Errorf("empty batch: %v", err)
	}

	fi, err := os.Stat(filepath.Join(dir, "out", "acme", "logged.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// The umask may remove bits.
	if perm := fi.Mode().Perm(); perm&^0o644 != 0 || perm&0o600 != 0o600 {
		t.Errorf("file mode %v, want at most 0644", perm)
	}
	di, err := os.Stat(filepath.Join(dir, "out", "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm&^0o755 != 0 || perm&0o700 != 0o700 {
		t.Errorf("directory mode %v, want at most 0755", perm)
	}
}

// TestWriteAppends: a new sink appends to existing files.
func TestWriteAppends(t *testing.T) {
	dir := t.TempDir()
	a, b := ev("a", "t", "x"), ev("b", "t", "x")
	for _, e := range []*cdc.Event{a, b} {
		s := newSink(t, "{{.Type}}.jsonl", dir)
		if err := s.Write(context.Background(), cdc.Batch{Events: []*cdc.Event{e}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	equalFiles(t, files(t, dir), map[string]string{"x.jsonl": lines(a, b)})
}

// TestWriteSameFileTwoNames: names that differ but clean to one path share
// the file, in batch order.
func TestWriteSameFileTwoNames(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, "out/{{.Type}}", dir)
	e := []*cdc.Event{ev("1", "", "a"), ev("2", "", "./a"), ev("3", "", "b/../a"), ev("4", "", "a")}
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
		t.Fatal(err)
	}
	equalFiles(t, files(t, dir), map[string]string{"out/a": lines(e...)})
}

// TestWriteRejects: an event whose path leaves the base directory, or
// cannot be rendered, is rejected at its index, after the events before it
// are written; the events after it are not written.
func TestWriteRejects(t *testing.T) {
	abs := filepath.ToSlash(filepath.Join(t.TempDir(), "abs"))
	tests := []struct {
		name     string
		template string
		bad      *cdc.Event // placed at index 2
		want     string     // in the error
	}{
		{"parent", "out/{{.TenantID}}/{{.Type}}.jsonl", ev("bad", "../..", "x"), `path "out/../../x.jsonl" is outside the directory out`},
		{"sibling", "out/{{.TenantID}}/{{.Type}}.jsonl", ev("bad", "..", "x"), `path "out/../x.jsonl" is outside the directory out`},
		{"deep", "out/{{.TenantID}}/{{.Type}}.jsonl", ev("bad", "a", "../../../etc/passwd"), "is outside the directory out"},
		{"absolute from relative", "{{.TenantID}}/{{.Type}}.jsonl", ev("bad", "", "x"), `path "/x.jsonl" is outside the directory .`},
		{"absolute tenant", "{{.TenantID}}", ev("bad", "/etc/passwd", "x"), "is outside the directory ."},
		{"dot dot alone", "{{.TenantID}}", ev("bad", "..", "x"), "is outside the directory ."},
		{"directory", "out/{{.Type}}", ev("bad", "t", "."), `path "out/." names the directory out`},
		{"trailing slash", "out/{{.Type}}", ev("bad", "t", "x/"), `path "out/x/" names a directory`},
		{"nul", "out/{{.Type}}", ev("bad", "t", "x\x00y"), "holds a NUL byte"},
		{"escape absolute base", abs + "/{{.Type}}", ev("bad", "t", "../x"), "is outside the directory"},
		{"empty name", "{{.Type}}", ev("bad", "t", ""), `template "{{.Type}}" rendered an empty name for event bad`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSink(t, tt.template, dir)
			good := func(id string) *cdc.Event { return ev(id, "acme", "good") }
			batch := []*cdc.Event{good("1"), good("2"), tt.bad, good("3")}
			err := s.Write(context.Background(), cdc.Batch{Events: batch})
			var re *cdc.RejectedError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a *cdc.RejectedError", err)
			}
			if re.Index != 2 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v (index %d), want index 2 and %q", err, re.Index, tt.want)
			}
			// The good events before the rejected one are durable.
			name, err := route.MustParse(tt.template).Render(good("x"))
			if err != nil {
				t.Fatal(err)
			}
			if !filepath.IsAbs(name) {
				name = filepath.Join(dir, name)
			}
			data, err := os.ReadFile(name)
			if err != nil || string(data) != lines(batch[:2]...) {
				t.Errorf("%s = %q, %v; want the two events before the rejected one", name, data, err)
			}
			got := files(t, dir)
			if filepath.IsAbs(name) && !strings.HasPrefix(name, dir) {
				got = files(t, filepath.Dir(name))
			}
			if len(got) != 1 {
				t.Errorf("files written: %v", slices.Sorted(maps.Keys(got)))
			}
		})
	}
}

// TestWriteRejectsFirst: a rejected first event writes nothing.
func TestWriteRejectsFirst(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, "out/{{.TenantID}}.jsonl", dir)
	err := s.Write(context.Background(), cdc.Batch{Events: []*cdc.Event{ev("1", "../x", "t"), ev("2", "ok", "t")}})
	var re *cdc.RejectedError
	if !errors.As(err, &re) || re.Index != 0 {
		t.Fatalf("err = %v, want rejection of event 0", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
}

// TestWriteConstantPath: a path without actions is used as is.
func TestWriteConstantPath(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, "../all.jsonl", filepath.Join(dir, "sub"))
	e := []*cdc.Event{ev("1", "a", "x"), ev("2", "b", "y")}
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
		t.Fatal(err)
	}
	equalFiles(t, files(t, dir), map[string]string{"all.jsonl": lines(e...)})

	for _, bad := range []string{"out/", "a\x00b"} {
		if _, err := New(Config{Path: route.MustParse(bad)}); err == nil {
			t.Errorf("New(%q): no error", bad)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a path: no error")
	}
}

// TestWriteMaxOpen: beyond MaxOpen files, the least recently used are
// synced and closed, and nothing is lost.
func TestWriteMaxOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Path: route.MustParse("{{.Type}}.jsonl"), Dir: dir, MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	want := map[string]string{}
	for batch := range 4 {
		var events []*cdc.Event
		for i := range 5 {
			typ := fmt.Sprint("t", (batch+i)%6)
			e := ev(fmt.Sprint(batch, "-", i), "", typ)
			events = append(events, e)
			want[typ+".jsonl"] += lines(e)
		}
		if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
			t.Fatal(err)
		}
		if n := len(s.files); n > 2 {
			t.Errorf("%d files open, want at most 2", n)
		}
	}
	equalFiles(t, files(t, dir), want)
	// The most recently used stay open.
	if _, ok := s.files[filepath.Join(dir, "t1.jsonl")]; !ok {
		t.Errorf("t1.jsonl, last written, is not open: %v", s.files)
	}
}

// TestWriteAfterTornLine: a file whose last line was cut short gets a
// newline before the new lines.
func TestWriteAfterTornLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.jsonl"), []byte(`{"id":"1"}`+"\n"+`{"id":"2","se`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, "{{.Type}}.jsonl", dir)
	e := []*cdc.Event{ev("2", "", "x"), ev("3", "", "x")}
	for range 2 {
		if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
			t.Fatal(err)
		}
	}
	equalFiles(t, files(t, dir), map[string]string{"x.jsonl": `{"id":"1"}` + "\n" + `{"id":"2","se` + "\n" + lines(e...) + lines(e...)})
}

// TestWriteError: a base directory that is a regular file is a fault of
// the configuration, which every event meets: a failure to create the file
// is an error, not a rejection, and the batch goes through once the cause
// is fixed. (TestWriteRetried and TestWriteRefused hold more cases.)
func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, "out/{{.Type}}.jsonl", dir)
	e := []*cdc.Event{ev("1", "", "x")}
	err := s.Write(context.Background(), cdc.Batch{Events: e})
	var re *cdc.RejectedError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("err = %v, want a plain error", err)
	}
	if err := os.Remove(filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
		t.Fatal(err)
	}
	equalFiles(t, files(t, dir), map[string]string{"out/x.jsonl": lines(e...)})
}

func TestWriteCanceled(t *testing.T) {
	s := newSink(t, "{{.Type}}", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, cdc.Batch{Events: []*cdc.Event{ev("1", "", "x")}}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestClose: Close syncs and closes every file; Write fails afterwards;
// Close again is harmless.
func TestClose(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, "{{.Type}}.jsonl", dir)
	e := []*cdc.Event{ev("1", "", "a"), ev("2", "", "b")}
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); err != nil {
		t.Fatal(err)
	}
	handles := make([]*handle, 0, len(s.files))
	for _, h := range s.files {
		handles = append(handles, h)
	}
	if len(handles) != 2 {
		t.Fatalf("%d files open, want 2", len(handles))
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, h := range handles {
		if _, err := h.f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s still open: %v", h.path, err)
		}
	}
	if len(s.files) != 0 {
		t.Errorf("%d files still listed", len(s.files))
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: e}); err == nil {
		t.Error("Write after Close: no error")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	equalFiles(t, files(t, dir), map[string]string{"a.jsonl": lines(e[0]), "b.jsonl": lines(e[1])})
}

// The sink satisfies cdc.Sink.
var _ cdc.Sink = (*Sink)(nil)
