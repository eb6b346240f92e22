// Package stdout is the sink that writes each event as one JSON envelope per
// line (see package envelope) to a writer, normally the process's standard
// output. It is meant for trying cdc out and for piping events into other
// tools.
//
// Write returns once the whole batch has been handed to the writer in a single
// write call: for a pipe or a file, the data then survives the death of the
// process, which is what the pipeline's checkpoint needs. Delivery is at least
// once: after a crash, the lines written after the last checkpoint are written
// again.
package stdout

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/envelope"
)

// Sink writes JSON lines to a writer.
type Sink struct {
	mu  sync.Mutex // serialises writes when several pipelines share a writer
	w   io.Writer
	buf []byte
}

// New returns a sink writing to w. Several sinks may share one writer: each
// batch is written with one call while holding a lock per Sink, so share a
// Sink value (not just the writer) between pipelines to keep lines whole.
func New(w io.Writer) *Sink {
	return &Sink{w: w}
}

// Write encodes the batch and writes it with one call to the writer.
func (s *Sink) Write(ctx context.Context, b cdc.Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	for _, e := range b.Events {
		buf = envelope.Append(buf, e)
		buf = append(buf, '\n')
	}
	s.buf = buf
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("write %d events to stdout: %w", len(b.Events), err)
	}
	return nil
}

// Close releases the encoding buffer. It does not close the writer.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	s.buf = nil
	s.mu.Unlock()
	return nil
}
