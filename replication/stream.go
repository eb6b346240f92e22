package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/internal/pgerr"
	"github.com/martencdc/cdc/internal/retry"
)

// State is what a Stream is doing.
type State int32

// States of a Stream.
const (
	StateStarting  State = iota // connecting or not started
	StateStandby                // the slot is held by another instance
	StateStreaming              // holding the slot and streaming
	StateStopped                // Run has returned
)

func (s State) String() string {
	switch s {
	case StateStandby:
		return "standby"
	case StateStreaming:
		return "streaming"
	case StateStopped:
		return "stopped"
	}
	return "starting"
}

// Stream reads a replication slot and hands its messages to a cdc.Consumer.
type Stream struct {
	cfg      Config
	repl     *pgconn.Config
	pool     *pgxpool.Pool
	state    atomic.Int32
	since    atomic.Int64           // when the state last changed, Unix nanoseconds
	cause    atomic.Pointer[string] // why the stream is reconnecting; nil when it is not
	streamed atomic.Bool            // the slot was held at least once
	resync   atomic.Bool            // Resync was called: drop the connection
}

// Resync makes the stream drop its connection and connect again, as after
// a failure: the process was paused (SIGCONT), and while it was, the server
// may have ended its connection and another instance taken the slot, even
// though data still buffered in the socket reads as if nothing happened.
// Safe for concurrent use.
func (s *Stream) Resync() { s.resync.Store(true) }

// Health is what a Stream is doing, since when and, while it reconnects, why.
type Health struct {
	State    State
	Since    time.Time // when it entered State
	Err      string    // the last failure, while reconnecting (State is StateStarting)
	Streamed bool      // it has held the slot at least once
}

// NewStream returns a stream over the slot of cfg. dsn is the source
// connection string (the stream adds replication=database itself); pool is a
// regular connection pool to the same database, used to read the slot's
// state. It does no I/O.
func NewStream(dsn string, pool *pgxpool.Pool, cfg Config) (*Stream, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	repl, err := replicationConnConfig(dsn, cfg)
	if err != nil {
		return nil, err
	}
	st := &Stream{cfg: cfg, repl: repl, pool: pool}
	st.since.Store(time.Now().UnixNano())
	return st, nil
}

// replicationConnConfig is the configuration of a replication connection to
// the database of dsn; cfg has its defaults.
func replicationConnConfig(dsn string, cfg Config) (*pgconn.Config, error) {
	repl, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse source dsn: %w", err)
	}
	repl.RuntimeParams["replication"] = "database"
	// pgoutput sends values as text in the walsender's DateStyle and
	// TimeZone; fix both so the decoder sees one timestamp format.
	repl.RuntimeParams["DateStyle"] = "ISO"
	repl.RuntimeParams["TimeZone"] = "UTC"
	repl.RuntimeParams["application_name"] = cfg.ApplicationName
	// The server ends a connection of ours it has heard nothing from for
	// as long as we wait for it, so that a standby can take the slot over
	// within that time after this instance is cut off.
	repl.RuntimeParams["wal_sender_timeout"] = strconv.FormatInt(cfg.Timeout.Milliseconds(), 10)
	repl.ConnectTimeout = cfg.Timeout
	return repl, nil
}

// State returns what the stream is doing now.
func (s *Stream) State() State { return State(s.state.Load()) }

// Health returns what the stream is doing, since when, and why it
// reconnects. Safe for concurrent use.
func (s *Stream) Health() Health {
	h := Health{State: s.State(), Since: time.Unix(0, s.since.Load()), Streamed: s.streamed.Load()}
	if c := s.cause.Load(); c != nil && h.State == StateStarting {
		h.Err = *c
	}
	return h
}

// setState records a new state; err, when not nil, is why the stream
// reconnects.
func (s *Stream) setState(st State, err error) {
	if State(s.state.Swap(int32(st))) != st {
		s.since.Store(time.Now().UnixNano())
	}
	if st == StateStreaming {
		s.streamed.Store(true)
	}
	if err != nil {
		msg := err.Error()
		s.cause.Store(&msg)
	} else if st != StateStarting {
		s.cause.Store(nil)
	}
}

// fatalError marks errors that retrying will not fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

var (
	errStandby = errors.New("slot held by another instance")
	errRestart = errors.New("restart requested")
	errResync  = errors.New("the process was paused (SIGSTOP, a frozen host): reconnecting, since another instance may hold the slot now")
)

// Run streams until ctx ends, reconnecting with backoff when the connection
// drops and standing by while another instance holds the slot. It returns nil
// after a clean shutdown (the consumer drained), or the error that stopped it:
// a consumer error, a missing slot or publication, failed authentication.
func (s *Stream) Run(ctx context.Context, c cdc.Consumer) error {
	defer s.setState(StateStopped, nil)
	log := s.cfg.Logger
	delay := retry.Backoff{Min: 250 * time.Millisecond, Max: 15 * time.Second}
	lastHolder := ""
	for {
		if ctx.Err() != nil {
			return nil
		}
		streamed, err := s.session(ctx, c)
		if err != nil {
			// Another instance may take the slot over now: nothing more
			// of what this connection delivered may be written.
			c.Abandon(errors.Is(err, errRestart))
		}
		var fatal *fatalError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &fatal):
			return fatal.err
		case errors.Is(err, errRestart):
			delay.Reset()
			continue
		case errors.Is(err, errStandby):
			s.setState(StateStandby, nil)
			holder := s.holder(ctx)
			if holder != lastHolder {
				log.Info("slot is held by another instance; standing by", "holder", holder, "retry_in", s.cfg.StandbyRetry)
				lastHolder = holder
			}
			if !retry.Sleep(ctx, s.cfg.StandbyRetry) {
				return nil
			}
			continue
		}
		lastHolder = ""
		if streamed {
			delay.Reset()
		}
		wait := delay.Next()
		log.Warn("replication stream interrupted; reconnecting", "err", err, "retry_in", wait)
		s.setState(StateStarting, err)
		if !retry.Sleep(ctx, wait) {
			return nil
		}
	}
}

// holder describes who holds the slot, for the standby log line.
func (s *Stream) holder(ctx context.Context) string {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := Slot(qctx, s.pool, s.cfg.Slot)
	if err != nil || !st.Active {
		return "unknown"
	}
	return fmt.Sprintf("%s (active_pid %d)", st.Holder, st.ActivePID)
}

// session connects, acquires the slot and streams until ctx ends or an error.
// streamed reports whether the slot was acquired.
func (s *Stream) session(ctx context.Context, c cdc.Consumer) (streamed bool, err error) {
	conn, err := pgconn.ConnectConfig(ctx, s.repl)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		if IsAuthError(err) {
			return false, &fatalError{fmt.Errorf("connect for replication: %w", pgerr.Clean(err))}
		}
		return false, fmt.Errorf("connect for replication: %w", pgerr.Clean(err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()

	// Every step before streaming is bounded by the timeout: on a silent
	// network it would otherwise wait for the kernel to give up.
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := c.Confirmable()
	err = pglogrepl.StartReplication(sctx, conn, s.cfg.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			// publication_names is parsed as a list of identifiers.
			`publication_names '"` + s.cfg.Publication + `"'`,
		},
	})
	if err != nil {
		switch pgErrCode(err) {
		case codeObjectInUse:
			return false, errStandby
		case codeObjectNotInPrerequisiteState:
			if st, serr := Slot(ctx, s.pool, s.cfg.Slot); serr == nil && st.WALStatus == "lost" {
				return false, &fatalError{fmt.Errorf("replication slot %s is lost: %s", s.cfg.Slot, LostSlotRecovery)}
			}
		case codeUndefinedObject:
			return false, &fatalError{fmt.Errorf("start replication on slot %s: %w (was it dropped? cdc creates it at start; events committed while it was missing are not in the stream)", s.cfg.Slot, err)}
		}
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, err)
	}
	slot, err := Slot(sctx, s.pool, s.cfg.Slot)
	if err != nil {
		return true, err
	}
	floor := slot.ConfirmedFlush
	s.setState(StateStreaming, nil)
	s.cfg.Logger.Info("streaming", "publication", s.cfg.Publication, "lsn", floor.String())
	if err := c.Open(sctx); err != nil {
		if ctx.Err() != nil {
			return true, nil // shut down while opening: nothing was read
		}
		// E.g. the checkpoint database is unreachable: retried with backoff.
		return false, fmt.Errorf("open consumer: %w", err)
	}
	return true, s.stream(ctx, conn, c, floor)
}

// tick bounds how long the stream waits for a message before it checks for
// shutdown, restart requests and due status updates.
const tick = 100 * time.Millisecond

// idleGap is how long the connection must stay quiet after a commit, with
// nothing buffered, before the stream tells the consumer it is idle
// (cdc.Consumer.Idle). While the server streams (a catch-up) the next
// message is buffered or arrives well within it, so the sinks' batches
// fill; once it stops, they are written within about this. At 5,000
// events/s in transactions of 5 (a commit every millisecond on average), 1 ms
// made most batches wait out their linger (Kafka p50 2.5-4.6 ms from
// commit); 200 µs gave 1.7-2.0 ms, with the same catch-up rate. A sink
// writes one batch at a time, so a shorter gap does not multiply writes
// beyond one per write round trip.
const idleGap = 200 * time.Microsecond

// confirmGap is the least time between two status updates sent because the
// consumer's confirmable position moved (cdc.Consumer.Advanced): prompt
// confirmation, rate-limited so that a stream of small batches does not
// send an update for each.
const confirmGap = 20 * time.Millisecond

func (s *Stream) stream(ctx context.Context, conn *pgconn.PgConn, c cdc.Consumer, floor cdc.LSN) error {
	received, sent := floor, floor
	netConn := conn.Conn()
	// sendStatus confirms what the consumer can; with reply it asks the
	// server to answer at once. The write is bounded: on a silent network
	// it would block once the socket's buffer is full.
	sendStatus := func(reply bool) error {
		flush := max(c.Confirmable(), sent)
		sent = flush
		if err := netConn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout)); err != nil {
			return fmt.Errorf("set write deadline: %w", err)
		}
		err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: pglogrepl.LSN(max(received, flush)),
			WALFlushPosition: pglogrepl.LSN(flush),
			WALApplyPosition: pglogrepl.LSN(flush),
			ClientTime:       time.Now(),
			ReplyRequested:   reply,
		})
		if err != nil {
			return fmt.Errorf("send standby status: %w", err)
		}
		return nil
	}
	nextStatus := time.Now().Add(s.cfg.StatusInterval)
	heard := time.Now() // when the server last sent anything
	probed := false     // a reply was asked for since
	var deadline time.Time
	// Prompt confirmation: a helper goroutine turns the consumer's
	// Advanced signal into a flag and wakes the read below by moving its
	// deadline (safe from any goroutine); only this goroutine writes.
	var advanced atomic.Bool
	lastPrompt := time.Time{} // when the last prompt status update was sent
	stop := make(chan struct{})
	var helper sync.WaitGroup
	helper.Add(1)
	moved := c.Advanced()
	go func() {
		defer helper.Done()
		for {
			select {
			case <-moved:
				advanced.Store(true)
				_ = netConn.SetReadDeadline(time.Now())
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		helper.Wait()
	}()
	// Group commit: after a commit the stream looks whether more is
	// coming; when nothing is buffered and the connection stays quiet for
	// idleGap it tells the consumer it is idle.
	afterCommit := false  // the last data handed over ended a transaction, and Idle was not called since
	idleAt := time.Time{} // when to call Idle unless more comes; zero: not pending
	for {
		now := time.Now()
		if s.resync.Swap(false) {
			return errResync
		}
		if !idleAt.IsZero() && !now.Before(idleAt) {
			idleAt, afterCommit = time.Time{}, false
			c.Idle()
		}
		if !now.Before(deadline) {
			if ctx.Err() != nil {
				return s.drain(c, sendStatus)
			}
			switch silent := now.Sub(heard); {
			case silent >= s.cfg.Timeout:
				return fmt.Errorf("the server sent nothing for %s (source.timeout): the connection is silent (a network partition, a hung proxy or a frozen host?); dropping it", silent.Round(time.Millisecond))
			case silent >= s.cfg.Timeout/2 && !probed:
				if err := sendStatus(true); err != nil {
					return err
				}
				probed = true
			}
			select {
			case <-c.Restart():
				s.cfg.Logger.Info("re-reading the slot for a sink that recovered", "lsn", c.Confirmable().String())
				if err := sendStatus(false); err != nil {
					return err
				}
				return errRestart
			default:
			}
			if !now.Before(nextStatus) {
				if err := sendStatus(false); err != nil {
					return err
				}
				nextStatus = now.Add(s.cfg.StatusInterval)
			}
			promptAt := lastPrompt.Add(confirmGap)
			if advanced.Load() && !now.Before(promptAt) {
				advanced.Store(false)
				if c.Confirmable() > sent {
					if err := sendStatus(false); err != nil {
						return err
					}
					lastPrompt = now
				}
			}
			deadline = now.Add(tick)
			if nextStatus.Before(deadline) {
				deadline = nextStatus
			}
			if end := heard.Add(s.cfg.Timeout); end.Before(deadline) {
				deadline = end
			}
			if advanced.Load() && promptAt.Before(deadline) {
				deadline = promptAt // rate-limited: confirm when the gap is over
			}
			if !idleAt.IsZero() && idleAt.Before(deadline) {
				deadline = idleAt
			}
			if err := netConn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
			if advanced.Load() && !now.Before(promptAt) {
				// Signalled after the look above, and its wake-up may
				// have come before the deadline just set: look again.
				deadline = time.Time{}
				continue
			}
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				deadline = time.Time{}
				continue
			}
			return fmt.Errorf("receive from slot %s: %w", s.cfg.Slot, err)
		}
		heard, probed = time.Now(), false
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				received = max(received, cdc.LSN(ka.ServerWALEnd))
				c.Heard(ka.ServerTime)
				c.Keepalive(cdc.LSN(ka.ServerWALEnd))
				if ka.ReplyRequested {
					if err := sendStatus(false); err != nil {
						return err
					}
					nextStatus = time.Now().Add(s.cfg.StatusInterval)
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				received = max(received, cdc.LSN(xld.WALStart)+cdc.LSN(len(xld.WALData)))
				c.Heard(xld.ServerTime)
				if err := c.Message(ctx, xld.WALData); err != nil {
					if ctx.Err() != nil {
						return s.drain(c, sendStatus) // shutdown while a sink held the stream back
					}
					return &fatalError{err}
				}
				// A sink that held the consumer back is no silence of the
				// server's.
				heard = time.Now()
				idleAt = time.Time{}
				afterCommit = len(xld.WALData) > 0 && xld.WALData[0] == byte(pglogrepl.MessageTypeCommit)
			}
			if afterCommit && idleAt.IsZero() && conn.Frontend().ReadBufferLen() == 0 {
				// A commit (and maybe keepalives) and nothing more read
				// yet: idle unless the connection brings more within
				// idleGap.
				idleAt = time.Now().Add(idleGap)
				if idleAt.Before(deadline) {
					deadline = idleAt
					if err := netConn.SetReadDeadline(idleAt); err != nil {
						return fmt.Errorf("set read deadline: %w", err)
					}
				}
			}
		case *pgproto3.ErrorResponse:
			err := pgconn.ErrorResponseToPgError(msg)
			if pgErrCode(err) == codeUndefinedObject { // e.g. the publication was dropped
				return &fatalError{fmt.Errorf("stream slot %s: %w", s.cfg.Slot, err)}
			}
			return fmt.Errorf("stream slot %s: %w", s.cfg.Slot, err)
		case *pgproto3.CopyDone:
			return fmt.Errorf("stream slot %s: server ended the replication stream", s.cfg.Slot)
		}
	}
}

// drain lets the consumer flush while the slot is still held, then confirms
// what it flushed.
func (s *Stream) drain(c cdc.Consumer, sendStatus func(bool) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := c.Drain(ctx)
	if serr := sendStatus(false); serr != nil {
		s.cfg.Logger.Warn("could not confirm the final position; the next start re-reads a little and skips it", "err", serr)
	}
	if err != nil {
		return &fatalError{err}
	}
	s.cfg.Logger.Info("stopped", "lsn", c.Confirmable().String())
	return nil
}
