package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

var errPortInUse = errors.New("port in use")

// server is a running postmaster.
type server struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // the result of cmd.Wait, set before exited is closed
}

// startServer starts postgres and waits until it accepts connections. On
// failure the process is gone and the error includes the log tail.
func startServer(ctx context.Context, binDir, dataDir, logPath string, settings map[string]string, acct *account) (*server, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open postgres log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor

	args := []string{"-D", dataDir}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}
	cmd := exec.Command(filepath.Join(binDir, "postgres"), args...)
	cmd.Env = serverEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = acct.sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres (as %s): %w", acct.name, err)
	}
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(ctx, settings["port"]); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the server accepts a connection, the server exits,
// or ctx ends.
func (s *server) waitReady(ctx context.Context, port string) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable&connect_timeout=2", port))
	if err != nil {
		return fmt.Errorf("parse readiness DSN: %w", err)
	}
	interval := 5 * time.Millisecond
	var lastErr error
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		timer := time.NewTimer(interval)
		select {
		case <-s.exited:
			timer.Stop()
			logTail := s.logTail()
			err := fmt.Errorf("postgres exited during startup (%v); log %s:\n%s", s.waitErr, s.logPath, logTail)
			if strings.Contains(logTail, "could not bind") || strings.Contains(logTail, "Address already in use") {
				return fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("wait for postgres to accept connections: %w (last error: %v); log %s:\n%s",
				ctx.Err(), lastErr, s.logPath, s.logTail())
		case <-timer.C:
		}
		interval = min(interval*2, 100*time.Millisecond)
	}
}

// kill kills the server and waits until it is reaped.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// logTail returns the last lines of the server log.
func (s *server) logTail() string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const maxTail = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxTail {
		_, _ = f.Seek(-maxTail, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return tail(b, 30)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
