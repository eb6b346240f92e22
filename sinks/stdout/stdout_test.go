package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/martencdc/cdc"
)

func TestWriteLines(t *testing.T) {
	var out bytes.Buffer
	s := New(&out)
	events := []*cdc.Event{
		{ID: "e1", SeqID: 1, StreamID: "s", Version: 1, Type: "incident_logged", Data: json.RawMessage(`{"a":1}`), LSN: 10},
		{ID: "e2", SeqID: 2, StreamID: "s", Version: 2, Type: "incident_closed", Data: json.RawMessage(`{}`), LSN: 10, Index: 1},
	}
	if err := s.Write(context.Background(), cdc.Batch{Events: events}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), cdc.Batch{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, line := range lines {
		var env struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
			LSN  string          `json:"lsn"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if env.ID != events[i].ID || string(env.Data) != string(events[i].Data) || env.LSN != "0/A" {
			t.Errorf("line %d = %+v", i, env)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteError(t *testing.T) {
	s := New(failingWriter{})
	err := s.Write(context.Background(), cdc.Batch{Events: []*cdc.Event{{ID: "e1"}}})
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("err = %v, want the writer's error", err)
	}
}
