package sinktest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/martencdc/cdc"
)

// EventTypes are the event types [TypeByStream] and [TypeByVersion] pick
// from, in order. Do not modify it.
var EventTypes = []string{"incident_logged", "incident_categorised", "incident_closed"}

// Tenants are the tenants the default [Spec.Tenant] picks from, in order.
// Do not modify it.
var Tenants = []string{"acme", "globex"}

// Spec describes the events [Events] makes: Versions events of each of
// Streams streams, interleaved (version 1 of every stream, then version 2,
// ...), so that a batch mixes streams as the replication stream does.
// The function fields are optional; nil takes the default named on each.
type Spec struct {
	// Streams is the number of streams, numbered from 0.
	Streams int
	// Versions is the number of events of each stream, versions 1 to
	// Versions.
	Versions int
	// Pad is the length of the filler string handed to Data: the bodies
	// are about Pad bytes larger than without it.
	Pad int
	// FirstSeq is the SeqID of the first event; the others follow by one.
	FirstSeq int64

	// Type returns the type of version version of stream stream. Default
	// TypeByStream.
	Type func(stream, version int) string
	// Data returns the body of version version of stream stream, filler
	// being Pad bytes of "x". Default DescriptionData.
	Data func(stream, version int, filler string) json.RawMessage
	// Tenant returns the tenant of stream stream. Default: Tenants in turn
	// (stream modulo 2).
	Tenant func(stream int) string
	// Correlation returns the correlation id of the event with SeqID seq,
	// "" for none. Default DefaultCorrelation.
	Correlation func(seq int64) string
	// Causation returns the causation id of the event with SeqID seq, ""
	// for none. Default DefaultCausation.
	Causation func(seq int64) string
}

// TypeByStream gives every event of a stream the same type: EventTypes in
// turn by stream (stream modulo 3). The default of [Spec.Type].
func TypeByStream(stream, _ int) string { return EventTypes[stream%len(EventTypes)] }

// TypeByVersion gives the events of each stream EventTypes in turn by
// version (version 1 is EventTypes[0], version 4 is EventTypes[0] again).
func TypeByVersion(_, version int) string { return EventTypes[(version-1)%len(EventTypes)] }

// DescriptionData is the body {"Description":"event <v> of stream
// <s>","Filler":"<filler>"}. The default of [Spec.Data].
func DescriptionData(stream, version int, filler string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"Description":"event %d of stream %d","Filler":%q}`, version, stream, filler))
}

// StepData is the body {"Stream":<s>,"Step":<v>,"Filler":"<filler>",
// "V<v>":true}: merged in version order (as the Elasticsearch sink's latest
// mode does), the bodies of a stream's events hold a key V<v> per version
// applied, in the order they were applied.
func StepData(stream, version int, filler string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"Stream":%d,"Step":%d,"Filler":%q,"V%d":true}`, stream, version, filler, version))
}

// DefaultCorrelation is "corr-<seq>" for even seqs, none for odd ones. The
// default of [Spec.Correlation].
func DefaultCorrelation(seq int64) string {
	if seq%2 == 0 {
		return fmt.Sprintf("corr-%d", seq)
	}
	return ""
}

// DefaultCausation is "cause-<seq>" for seqs divisible by 3, none for the
// others. The default of [Spec.Causation].
func DefaultCausation(seq int64) string {
	if seq%3 == 0 {
		return fmt.Sprintf("cause-%d", seq)
	}
	return ""
}

// NoID is a [Spec.Correlation] or [Spec.Causation] that gives no event an id.
func NoID(int64) string { return "" }

// PerTx is the number of consecutive SeqIDs that share a transaction in
// the events of [Events]: the event with SeqID seq has the commit LSN
// 0x16B3748 + seq/PerTx*0x100 and the index seq%PerTx within it.
const PerTx = 4

// Events returns the events spec describes, in position order. Each field
// is a function of the stream s, the version v and the SeqID seq:
//
//	ID            0192f0c4-<s, 4 hex digits>-7000-8000-<seq, 12 hex digits>
//	SeqID         seq, from FirstSeq up
//	StreamID      a1b2c3d4-0000-4000-8000-<s, 12 decimal digits>
//	Version       v
//	Type          spec.Type(s, v)
//	DotnetType    Helpdesk.Api.Incidents.Event, Helpdesk.Api
//	TenantID      spec.Tenant(s)
//	Timestamp     2026-11-22 10:00:00 UTC plus seq microseconds
//	Data          spec.Data(s, v, Pad x's)
//	Headers       {"source":"api"}
//	CorrelationID spec.Correlation(seq)
//	CausationID   spec.Causation(seq)
//	LSN, Index    see PerTx: positions strictly increase
//	CommitTime    2026-11-22 10:00:01 UTC
//	TxID          700 + seq/PerTx
//
// The ids and stream ids are UUIDs, unique as long as Streams is at most
// 65536. Events makes new events on every call: callers may modify them.
func Events(spec Spec) []*cdc.Event {
	if spec.Streams <= 0 || spec.Versions <= 0 {
		return nil
	}
	typ := spec.Type
	if typ == nil {
		typ = TypeByStream
	}
	data := spec.Data
	if data == nil {
		data = DescriptionData
	}
	tenant := spec.Tenant
	if tenant == nil {
		tenant = func(s int) string { return Tenants[s%len(Tenants)] }
	}
	correlation := spec.Correlation
	if correlation == nil {
		correlation = DefaultCorrelation
	}
	causation := spec.Causation
	if causation == nil {
		causation = DefaultCausation
	}
	events := make([]*cdc.Event, 0, spec.Streams*spec.Versions)
	seq := spec.FirstSeq
	filler := strings.Repeat("x", spec.Pad)
	for v := 1; v <= spec.Versions; v++ {
		for s := range spec.Streams {
			events = append(events, &cdc.Event{
				ID:            fmt.Sprintf("0192f0c4-%04x-7000-8000-%012x", s, seq),
				SeqID:         seq,
				StreamID:      fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", s),
				Version:       int64(v),
				Type:          typ(s, v),
				DotnetType:    "Helpdesk.Api.Incidents.Event, Helpdesk.Api",
				TenantID:      tenant(s),
				Timestamp:     time.Date(2026, 11, 22, 10, 0, 0, int(seq)*1000, time.UTC),
				Data:          data(s, v, filler),
				Headers:       json.RawMessage(`{"source":"api"}`),
				CorrelationID: correlation(seq),
				CausationID:   causation(seq),
				LSN:           cdc.LSN(0x16B3748 + seq/PerTx*0x100),
				Index:         uint32(seq % PerTx),
				CommitTime:    time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC),
				TxID:          uint32(700 + seq/PerTx),
			})
			seq++
		}
	}
	return events
}
