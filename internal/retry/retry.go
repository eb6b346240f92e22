// Package retry provides the exponential backoff and the cancellable sleep
// used wherever cdc retries: reconnecting the replication stream, rewriting a
// failed batch, saving a checkpoint.
package retry

import (
	"context"
	"time"
)

// Backoff is an exponential delay that starts at Min and doubles up to Max.
// The zero value is not useful; set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	return b.cur
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits for d or until ctx ends; it reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
