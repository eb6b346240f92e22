package pgcluster

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// Crash stops the server the way a power cut stops a database process, as
// far as PostgreSQL can tell: an immediate shutdown (SIGQUIT to the
// postmaster), in which every backend exits at once, open transactions are
// lost, clients see their connections drop, and no shutdown checkpoint is
// written, so the next start runs crash recovery from the last checkpoint
// ("database system was not properly shut down; automatic recovery in
// progress" in the log). Committed transactions survive: the WAL is in the
// operating system's page cache (fsync is off by default, which only
// matters if the machine itself crashes).
//
// Crash returns once the postmaster has exited (SIGKILL after 15s if it
// has not). The data directory and port stay reserved for
// [Cluster.Restart]; [Cluster.Stop] still removes everything. Crashing a
// server that is not running is an error.
func (c *Cluster) Crash() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return fmt.Errorf("crash postgres on port %d: the cluster was stopped", c.port)
	}
	s := c.server
	select {
	case <-s.exited:
		return fmt.Errorf("crash postgres on port %d: it is not running (exit: %v)", c.port, s.waitErr)
	default:
	}
	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return fmt.Errorf("crash postgres on port %d: send SIGQUIT: %w", c.port, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		s.kill()
		c.log.Warn("postgres ignored SIGQUIT; killed it", "port", c.port, "after", stopTimeout)
	}
	c.down = true
	c.log.Info("postgres crashed on purpose (immediate shutdown)", "port", c.port,
		"duration", time.Since(began).Round(time.Millisecond))
	return nil
}

// Restart starts the server again on the same port and data directory,
// with the same settings ([Options].Settings included), and returns once
// it accepts connections; after [Cluster.Crash] that includes crash
// recovery. A running server is first shut down cleanly (fast shutdown),
// as `pg_ctl restart -m fast` would. ctx bounds the start (60s when ctx
// has no deadline).
//
// If another process took the port while the server was down, Restart
// fails and the cluster stays down; [Cluster.Stop] still cleans up.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return fmt.Errorf("restart postgres on port %d: the cluster was stopped", c.port)
	}
	began := time.Now()
	s := c.server
	select {
	case <-s.exited:
	default:
		if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
			return fmt.Errorf("restart postgres on port %d: signal it to shut down: %w", c.port, err)
		}
		timer := time.NewTimer(stopTimeout)
		select {
		case <-s.exited:
			timer.Stop()
		case <-timer.C:
			s.kill()
			c.log.Warn("postgres did not shut down for a restart; killed it", "port", c.port, "after", stopTimeout)
		}
	}
	c.down = true

	ctx, cancel := context.WithTimeout(ctx, defaultStartTimeout)
	defer cancel()
	srv, err := startServer(ctx, c.binDir, c.dataDir, c.LogPath(), c.settings, c.acct)
	if err != nil {
		return fmt.Errorf("restart postgres on port %d: %w", c.port, err)
	}
	c.server = srv
	c.down = false
	c.log.Info("postgres restarted", "port", c.port, "duration", time.Since(began).Round(time.Millisecond))
	return nil
}

// PID returns the process id of the postmaster, or 0 when the server is
// not running (after [Cluster.Crash] or [Cluster.Stop]).
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.server.exited:
		return 0
	default:
		return c.server.cmd.Process.Pid
	}
}
