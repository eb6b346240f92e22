package pipeline

import (
	"time"

	"github.com/martencdc/cdc"
)

// chunkSize is the most items the pipeline collects before handing them on.
const chunkSize = 1024

type itemKind uint8

const (
	itemEvent    itemKind = iota + 1 // an event
	itemCommit                       // the end of a transaction
	itemFloor                        // a loaded checkpoint: skip everything at or below it
	itemFrontier                     // the stream has dispatched every transaction ending before end
	itemIdle                         // the stream went idle after the items before it: write the batch
)

// item is one entry of a chunk. Chunks are shared by every sink and never
// modified once dispatched.
type item struct {
	kind       itemKind
	pos        cdc.Position // event position; (commit LSN, EndOfTx) for a commit
	event      *cdc.Event   // itemEvent
	end        cdc.LSN      // itemCommit, itemFloor: end LSN of the transaction; itemFrontier: the WAL end
	commitTime time.Time    // itemCommit, itemFloor
	events     int64        // itemFloor: events delivered so far
}

// floorItem is the item that sets a sink's starting point to cp.
func floorItem(cp cdc.Checkpoint) item {
	return item{kind: itemFloor, pos: cp.Position, end: cp.Flush, commitTime: cp.CommitTime, events: cp.Events}
}

func countEvents(c []item) int64 {
	var n int64
	for i := range c {
		if c[i].kind == itemEvent {
			n++
		}
	}
	return n
}
