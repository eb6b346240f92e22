package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// This file holds what the tests of cdc's operational surface need: the
// JSON log records of a child, the admin listener's /readyz, one-shot cdc
// commands (cdc status), and the checkpoint table.

// LogRecord is one JSON log line of a cdc child (cdc logs JSON when its
// stderr is not a terminal): "time", "level", "msg", and the attributes.
type LogRecord map[string]any

// Str returns the attribute key as text ("" when absent).
func (r LogRecord) Str(key string) string {
	v, ok := r[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Records returns the JSON log records of the process whose msg is msg
// (every record when msg is ""), in order. Lines that are not JSON (the
// command's error lines, a goroutine dump) are skipped.
func (p *Proc) Records(msg string) []LogRecord {
	var out []LogRecord
	sc := bufio.NewScanner(strings.NewReader(p.Stderr()))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var r LogRecord
		if err := json.Unmarshal(line, &r); err != nil {
			continue // a line cut short by the end of the file
		}
		if msg == "" || r.Str("msg") == msg {
			out = append(out, r)
		}
	}
	return out
}

// ErrorLines returns the lines of the process's stderr that are not JSON
// log records: the command's own error lines ("cdc: ...").
func (p *Proc) ErrorLines() []string {
	var out []string
	for _, l := range strings.Split(p.Stderr(), "\n") {
		if l != "" && !strings.HasPrefix(l, "{") {
			out = append(out, l)
		}
	}
	return out
}

// metricsFlag makes a cdc run serve its admin endpoints on a free port; the
// address is in its log (Proc.MetricsAddr).
var metricsFlag = []string{"--metrics-addr", "127.0.0.1:0"}

// MetricsAddr waits until the process (started with metricsFlag) logged the
// address of its admin listener ("serving metrics") and returns it.
func (p *Proc) MetricsAddr(timeout time.Duration) string {
	p.e.t.Helper()
	var addr string
	p.e.Eventually(timeout, func() bool {
		for _, r := range p.Records("serving metrics") {
			addr = r.Str("addr")
		}
		return addr != ""
	}, "cdc %s logs the address of its admin listener (serving metrics)", p.Tag)
	return addr
}

// httpTimeout bounds one request to the admin listener: it must answer
// whatever the pipeline does.
const httpTimeout = 5 * time.Second

// Readyz asks the admin listener at addr for /readyz and returns the status
// code and the body.
func Readyz(addr string) (int, string, error) {
	c := http.Client{Timeout: httpTimeout}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// commandTimeout bounds a one-shot cdc command.
const commandTimeout = time.Minute

// Command runs `cdc args...` (a command that ends by itself, such as
// status) in the Env's directory with the environment the configuration
// refers to, and returns its stdout, its stderr and its exit code.
func (e *Env) Command(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cdcBin, args...)
	cmd.Dir = e.Dir
	cmd.Env = e.envList()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.t.Fatalf("cdc %s did not end within %v; stderr:\n%s", strings.Join(args, " "), commandTimeout, errb.String())
	case errors.As(err, &exit):
		return out.String(), errb.String(), exit.ExitCode()
	case err != nil:
		e.t.Fatalf("run cdc %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0
}

// StatusSink is what the harness reads of a sink in `cdc status --json`.
type StatusSink struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	State     string `json:"state"`
	Error     string `json:"error"`
	LagEvents int64  `json:"lag_events"`
	Delivered int64  `json:"delivered"`
}

// StatusJSON runs `cdc status --config config --json` and returns the
// sinks of the pipeline, by name, and the command's exit code.
func (e *Env) StatusJSON(config string) (map[string]StatusSink, int) {
	e.t.Helper()
	out, errOut, code := e.Command("status", "--config", config, "--json")
	var doc struct {
		Pipelines []struct {
			Name  string       `json:"name"`
			Sinks []StatusSink `json:"sinks"`
			Error string       `json:"error"`
		} `json:"pipelines"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Pipelines) != 1 {
		e.t.Fatalf("cdc status --json (exit %d): cannot read %q: %v; stderr:\n%s", code, out, err, errOut)
	}
	sinks := map[string]StatusSink{}
	for _, s := range doc.Pipelines[0].Sinks {
		sinks[s.Name] = s
	}
	return sinks, code
}

// SinkCheckpoint is a sink's row of cdc_checkpoints.
type SinkCheckpoint struct {
	LSN, Flush string
	Index      int64
	Events     int64
	Pending    int64
	State      string
	Error      string
}

// Checkpoint reads the checkpoint row of sink from cdc_checkpoints (in the
// store's schema); ok is false when it has none.
func (e *Env) Checkpoint(sink string) (cp SinkCheckpoint, ok bool) {
	e.t.Helper()
	err := e.Pool.QueryRow(e.t.Context(), `SELECT lsn::text, tx_index, flush_lsn::text, events, pending, state, error
FROM `+Schema+`.cdc_checkpoints WHERE pipeline = $1 AND sink = $2`, Pipeline, sink).
		Scan(&cp.LSN, &cp.Index, &cp.Flush, &cp.Events, &cp.Pending, &cp.State, &cp.Error)
	if err != nil {
		if strings.Contains(err.Error(), "no rows") {
			return cp, false
		}
		e.t.Fatalf("read the checkpoint of sink %s: %v", sink, err)
	}
	return cp, true
}

// lastLine returns the last complete line of the file at path.
func lastLine(path string) []byte {
	b, _ := os.ReadFile(path)
	b = bytes.TrimRight(b[:bytes.LastIndexByte(b, '\n')+1], "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// fileSize returns the size of the file at path (0 when it is missing).
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// stopped reports whether every thread of process pid is stopped (state T
// in /proc/<pid>/task/*/stat): SIGSTOP has taken effect.
func stopped(pid int) bool {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			return false
		}
		// pid (comm) S ...: the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}
