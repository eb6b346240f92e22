package pipeline

import "context"

// dispatch hands the current chunk to every sink. A sink that is failing with
// a full queue, or does not take the chunk within StallTimeout, is detached
// instead (runner.enqueue).
func (p *Pipeline) dispatch(ctx context.Context) error {
	if len(p.chunk) == 0 {
		return nil
	}
	c := p.chunk
	p.chunk = make([]item, 0, min(2*len(c), chunkSize))
	for _, r := range p.runners {
		if err := r.enqueue(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// closeInputs tells every sink that nothing more comes: each writes what it
// holds, saves its checkpoint and ends.
func (p *Pipeline) closeInputs() {
	for _, r := range p.runners {
		r.closeInput()
	}
}
