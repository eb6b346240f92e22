package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a `cdc run` child process: the benchmark runs cdc as a process of
// its own so that its peak RSS is cdc's alone.
type proc struct {
	cmd       *exec.Cmd
	streaming chan struct{} // closed when cdc logged that it streams
	once      sync.Once
	at        time.Time // when the streaming line was read
	mu        sync.Mutex
	tail      []string // its last stderr lines, for errors
	exited    chan struct{}
	err       error
}

// startProc starts command (the cdc binary and its leading arguments) with
// `run --config config`, its stdout going to stdout.
func startProc(ctx context.Context, command, env []string, config string, stdout io.Writer) (*proc, error) {
	args := append(append([]string{}, command[1:]...), "run", "--config", config, "--log-format", "json")
	cmd := exec.Command(command[0], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, streaming: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start cdc: %w", err)
	}
	go p.readLog(errPipe)
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// readLog watches cdc's log for the line saying it streams.
func (p *proc) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "streaming" {
			p.once.Do(func() { p.at = time.Now(); close(p.streaming) })
		}
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 20 {
			p.tail = p.tail[1:]
		}
		p.mu.Unlock()
	}
}

// waitStreaming returns when cdc streams, with the time it said so.
func (p *proc) waitStreaming(ctx context.Context, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.streaming:
		return p.at, nil
	case <-p.exited:
		return time.Time{}, fmt.Errorf("cdc exited before it streamed (%v):\n%s", p.err, p.log())
	case <-t.C:
		return time.Time{}, fmt.Errorf("cdc did not stream within %s:\n%s", timeout, p.log())
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// log returns cdc's last log lines.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *proc) peakRSS() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// stop ends cdc with SIGTERM (it flushes and saves), then SIGKILL after
// timeout.
func (p *proc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("cdc did not stop after SIGTERM; killed")
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.err
	}
	if p.err != nil {
		return fmt.Errorf("cdc exited with %v:\n%s", p.err, p.log())
	}
	return nil
}
