// Package cdc holds the vocabulary shared by every stage of the projector:
// log sequence numbers ([LSN]), event positions ([Position]), decoded Marten
// events ([Event]), the batches handed to sinks ([Batch]), the batching policy
// ([BatchPolicy]) and the [Sink] contract itself.
//
// The package does no I/O. The data flow is:
//
//	replication (slot, pgoutput stream) -> decoder (pgoutput bytes to Events)
//	  -> pipeline (routing, batching, retries, checkpoints) -> sinks
//
// A Position is (commit LSN of the event's transaction, index of the row within
// that transaction). Events reach every sink in Position order, which is the
// commit order of their transactions and, within a transaction, WAL order.
// Events are immutable once decoded: the same *Event is shared by every sink
// and must not be modified.
package cdc
