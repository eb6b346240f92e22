package wait_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/admin"
	"github.com/martencdc/cdc/applied"
	"github.com/martencdc/cdc/wait"
)

// The client against the real admin handler and tracker: every outcome.
func TestClient(t *testing.T) {
	state := map[string]applied.Progress{
		"ok":      {Reached: 0x100, Flush: 0x100, State: cdc.SinkOK},
		"stopped": {Reached: 0x10, State: cdc.SinkStopped, Error: "event e1 rejected"},
	}
	tr := applied.New([]applied.Pipeline{{Name: "p", Sinks: []string{"ok", "stopped"}, Local: func() (map[string]applied.Progress, bool) {
		return state, true
	}}}, 0, nil)
	srv := httptest.NewServer(admin.Endpoints{Waits: tr}.Handler())
	defer srv.Close()
	client := func(sink string) *wait.Client {
		return &wait.Client{BaseURL: srv.URL, Pipeline: "p", Sink: sink, Poll: 50 * time.Millisecond}
	}
	ctx := t.Context()

	st, err := client("ok").Wait(ctx, 0x80)
	if err != nil || !st.Applied || st.Reached != "0/100" || st.State != "ok" {
		t.Fatalf("applied: %+v, %v", st, err)
	}

	// Not yet: several long polls, then the context's end.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := client("ok").Wait(short, 0x200); !errors.Is(err, wait.ErrTimeout) {
		t.Fatalf("not yet: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a 200ms wait took %s", d)
	}

	// Released during a later poll.
	done := make(chan error, 1)
	go func() {
		_, err := client("ok").Wait(ctx, 0x300)
		done <- err
	}()
	time.Sleep(120 * time.Millisecond) // let it poll more than once; not a synchronisation
	tr.Advance("p", "ok", 0x300)
	if err := <-done; err != nil {
		t.Fatalf("released wait: %v", err)
	}

	_, err = client("stopped").Wait(ctx, 0x20)
	var se *wait.SinkError
	if !errors.As(err, &se) || !errors.Is(err, wait.ErrSinkUnavailable) || se.Status.State != "stopped" || se.Status.Error != "event e1 rejected" {
		t.Fatalf("stopped sink: %v", err)
	}
	if _, err := client("nope").Wait(ctx, 1); !errors.Is(err, wait.ErrNotFound) {
		t.Fatalf("unknown sink: %v", err)
	}
	if _, err := client("ok").WaitTx(ctx, 5); !errors.Is(err, wait.ErrBadRequest) {
		t.Fatalf("txid with no resolver: %v", err)
	}
}
