package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/decoder"
	"github.com/martencdc/cdc/replication"
)

// ceiling reads slot through cdc's replication stream with a consumer that
// only decodes the inserts into events and acknowledges each commit: the
// rate at which PostgreSQL's decoder hands events to a client of one slot
// on this machine. It returns when want events arrived, with the time from
// the stream's start and the commit LSN of the last transaction.
func ceiling(ctx context.Context, dsn string, pool *pgxpool.Pool, slot, publication, schema string, want int) (time.Duration, cdc.LSN, error) {
	s, err := replication.NewStream(dsn, pool, replication.Config{Slot: slot, Publication: publication, Schema: schema})
	if err != nil {
		return 0, 0, fmt.Errorf("ceiling: %w", err)
	}
	c := &decodeCounter{dec: decoder.New(decoder.Config{Schema: schema}), want: want, done: make(chan struct{}), restart: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, c) }()
	select {
	case <-c.done:
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		return 0, 0, fmt.Errorf("ceiling: the stream ended: %v", err)
	}
	d := c.finished.Sub(c.started)
	cancel()
	<-errc
	return d, c.lastCommit, nil
}

// decodeCounter is the ceiling's cdc.Consumer.
type decodeCounter struct {
	dec     *decoder.Decoder
	want    int
	n       int
	done    chan struct{}
	restart chan struct{}
	once    sync.Once

	confirm           cdc.LSN // confirmable: the end of the last commit
	lastCommit        cdc.LSN
	started, finished time.Time
}

func (c *decodeCounter) Open(context.Context) error {
	if c.started.IsZero() {
		c.started = time.Now()
	}
	return nil
}

func (c *decodeCounter) Message(_ context.Context, data []byte) error {
	m, err := c.dec.Decode(data)
	if err != nil {
		return err
	}
	switch m.Kind {
	case decoder.KindEvent:
		c.n++
	case decoder.KindCommit:
		c.lastCommit = m.CommitLSN
		c.confirm = m.EndLSN
		if c.n >= c.want {
			c.once.Do(func() { c.finished = time.Now(); close(c.done) })
		}
	}
	return nil
}

func (c *decodeCounter) Keepalive(cdc.LSN)           {}
func (c *decodeCounter) Heard(time.Time)             {}
func (c *decodeCounter) Confirmable() cdc.LSN        { return c.confirm }
func (c *decodeCounter) Restart() <-chan struct{}    { return c.restart }
func (c *decodeCounter) Drain(context.Context) error { return nil }
func (c *decodeCounter) Abandon(bool)                {}
func (c *decodeCounter) Idle()                       {}
func (c *decodeCounter) Advanced() <-chan struct{}   { return nil }
