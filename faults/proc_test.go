package faults

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// stopTimeout bounds the wait for a cdc child to exit after SIGTERM.
const stopTimeout = 60 * time.Second

// Proc is a cdc child process started by a test. Its stdout and stderr go
// to files in the Env's directory named after its tag.
type Proc struct {
	Tag        string
	Started    time.Time
	StdoutPath string // the stdout sink's output
	StderrPath string // cdc's logs

	e     *Env
	cmd   *exec.Cmd
	done  chan struct{} // closed when the process has been reaped
	err   error         // cmd.Wait's result, set before done is closed
	asked atomic.Bool   // the test asked it to exit (Stop, Kill, ExpectExit)
}

// Start runs `cdc run --config config args...` as a child process, in the
// Env's directory, with the environment the configuration refers to. It
// is killed (SIGKILL) when the test ends, before anything else is torn
// down, and its stderr is logged if the test failed.
func (e *Env) Start(tag, config string, args ...string) *Proc {
	e.t.Helper()
	p := &Proc{Tag: tag, e: e, done: make(chan struct{}),
		StdoutPath: filepath.Join(e.Dir, tag+".out"), StderrPath: filepath.Join(e.Dir, tag+".err")}
	stdout, err := os.OpenFile(p.StdoutPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	mustDo(e.t, "create stdout of cdc "+tag+" (tags must be unique)", err)
	stderr, err := os.Create(p.StderrPath)
	mustDo(e.t, "create stderr of cdc "+tag, err)
	p.cmd = exec.Command(cdcBin, append([]string{"run", "--config", config}, args...)...)
	p.cmd.Dir = e.Dir
	p.cmd.Env = e.envList()
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	// A process group of its own: a terminal's signals do not reach it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		e.t.Fatalf("start cdc %s: %v", tag, err)
	}
	p.Started = time.Now()
	go func() {
		p.err = p.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	e.t.Cleanup(func() {
		p.asked.Store(true)
		if e.t.Failed() && !p.Exited() {
			p.dumpGoroutines()
		}
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if e.t.Failed() {
			e.t.Logf("cdc %s (pid %d) stderr, last lines:\n%s", tag, p.PID(), tailText(p.Stderr(), 60))
		}
	})
	e.log.Info("cdc started", "tag", tag, "pid", p.PID())
	return p
}

// StartStreaming is Start (with args) followed by a wait (up to timeout)
// until this process holds the slot.
func (e *Env) StartStreaming(tag, config string, timeout time.Duration, args ...string) *Proc {
	e.t.Helper()
	p := e.Start(tag, config, args...)
	e.Eventually(timeout, func() bool { return e.Holder() == p.PID() }, "cdc %s streams", tag)
	return p
}

// dumpTimeout bounds the wait for a goroutine dump.
const dumpTimeout = 10 * time.Second

// dumpGoroutines asks a live child for a goroutine dump (SIGQUIT: the Go
// runtime prints every goroutine's stack to stderr and exits), resuming it
// first if it is paused, and keeps its whole stderr in a file of the
// system's temporary directory that outlives the test, whose path it logs.
func (p *Proc) dumpGoroutines() {
	t := p.e.t
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	timer := time.NewTimer(dumpTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
	}
	b, err := os.ReadFile(p.StderrPath)
	if err != nil {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	f, err := os.CreateTemp("", "cdc-faults-"+name+"-"+p.Tag+"-*.stderr")
	if err != nil {
		t.Logf("keep the stderr of cdc %s: %v", p.Tag, err)
		return
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Logf("keep the stderr of cdc %s: %v", p.Tag, err)
		return
	}
	t.Logf("cdc %s was still running when the test failed: its stderr with a goroutine dump (SIGQUIT) is in %s", p.Tag, f.Name())
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	p.e.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.e.t.Fatalf("send %v to cdc %s: %v", sig, p.Tag, err)
	}
}

// Kill ends the process with SIGKILL (no flush, no checkpoint) and waits
// until it is gone.
func (p *Proc) Kill() {
	p.e.t.Helper()
	p.asked.Store(true)
	p.Signal(syscall.SIGKILL)
	<-p.done
	p.e.log.Info("cdc killed", "tag", p.Tag)
}

// Stop sends SIGTERM and returns the exit code, failing the test if the
// process does not exit within a minute.
func (p *Proc) Stop() int {
	p.e.t.Helper()
	p.asked.Store(true)
	p.Signal(syscall.SIGTERM)
	return p.Wait(stopTimeout)
}

// StopOK is Stop, failing the test unless the exit code is 0.
func (p *Proc) StopOK() {
	p.e.t.Helper()
	if code := p.Stop(); code != 0 {
		p.e.t.Fatalf("cdc %s exited %d after SIGTERM; stderr:\n%s", p.Tag, code, tailText(p.Stderr(), 40))
	}
}

// Pause stops the process with SIGSTOP: it keeps its sockets and does
// nothing, as a frozen VM or a process stuck in a long GC pause would. It
// returns once every thread of the process is stopped, so that what the
// process wrote so far is all it wrote before the pause.
func (p *Proc) Pause() {
	p.e.t.Helper()
	p.Signal(syscall.SIGSTOP)
	p.e.Eventually(pauseTimeout, func() bool { return stopped(p.PID()) }, "cdc %s stops (SIGSTOP)", p.Tag)
	p.e.log.Info("cdc paused", "tag", p.Tag)
}

// pauseTimeout bounds the wait for SIGSTOP to take effect.
const pauseTimeout = 10 * time.Second

// Resume continues a paused process with SIGCONT.
func (p *Proc) Resume() {
	p.e.t.Helper()
	p.Signal(syscall.SIGCONT)
	p.e.log.Info("cdc resumed", "tag", p.Tag)
}

// ExpectExit tells the harness that the process may exit by itself, so
// that Env.Eventually does not fail when it does.
func (p *Proc) ExpectExit() { p.asked.Store(true) }

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *Proc) Wait(timeout time.Duration) int {
	p.e.t.Helper()
	p.asked.Store(true)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.e.t.Fatalf("cdc %s did not exit within %v; stderr:\n%s", p.Tag, timeout, tailText(p.Stderr(), 40))
	}
	return p.ExitCode()
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit code of an exited process, -1 when a signal
// ended it; it must only be called once Exited.
func (p *Proc) ExitCode() int {
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}

// exitedUnasked reports whether the process exited without the test
// asking it to.
func (p *Proc) exitedUnasked() bool { return p.Exited() && !p.asked.Load() }

// Stderr returns what the process logged so far.
func (p *Proc) Stderr() string {
	b, _ := os.ReadFile(p.StderrPath)
	return string(b)
}

// Lines counts the complete lines the process wrote to stdout so far.
func (p *Proc) Lines() int {
	b, _ := os.ReadFile(p.StdoutPath)
	return strings.Count(string(b), "\n")
}

// Logged counts the log lines of the process that contain s.
func (p *Proc) Logged(s string) int { return strings.Count(p.Stderr(), s) }

// RSS returns the resident set size of the process (VmRSS of
// /proc/<pid>/status) in bytes.
func (p *Proc) RSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, fmt.Errorf("read the RSS of cdc %s: %w", p.Tag, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "12345", "kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("read the RSS of cdc %s: unexpected VmRSS line %q", p.Tag, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read the RSS of cdc %s: %w", p.Tag, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read the RSS of cdc %s: %w", p.Tag, err)
	}
	return 0, fmt.Errorf("read the RSS of cdc %s: no VmRSS line (a zombie?)", p.Tag)
}

// procs returns the children started so far, in start order.
func (e *Env) procsSnapshot() []*Proc {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Proc(nil), e.procs...)
}
