// Package sinktest is the conformance suite every sink runs, and the events
// the sinks' tests write.
//
// A sink (a [cdc.Sink]) promises the pipeline a small contract, spelled out
// on [cdc.Sink] and [cdc.RejectedError]; [Run] checks it against a real (or
// faithfully faked) target, one subtest per clause:
//
//   - DurableOnNil: when Write returns nil, every event of the batch is in
//     the target, read back without calling Close, and nothing else is; an
//     empty batch is nil and writes nothing.
//   - Redelivery: writing a batch again (whole, overlapping, or an earlier
//     part of it, and through another sink on the same target, as after a
//     restart) is harmless to the extent the sink declares in
//     [Harness.Redelivery]: each event exactly once ([Idempotent]), or at
//     least once with nothing lost ([AtLeastOnce]).
//   - StreamOrder: in each ordering unit of the target (a Kafka partition,
//     a file, an index, a table), the events of a stream read back in
//     version order (their first occurrences, for at-least-once sinks), a
//     retried batch included.
//   - PartialFailure: an event the target refuses for good (made by
//     [Harness.Poison]) makes Write return a *[cdc.RejectedError] with the
//     event's index once every event before it is durable; the target does
//     not hold it, and the events after it can be written next.
//   - CloseFlushes: after Write and Close, the target holds everything.
//   - Cancel: Write with a context already cancelled returns promptly, with
//     an error or nil and the batch durable; Write with a context cancelled
//     while the target hangs (made by [Target.Block]) returns an error; and
//     the sink writes the batch on the next call either way.
//
// A sink package runs the suite from a conformance_test.go:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Harness{
//			New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
//				... // a fresh target, and a sink writing to it
//				return sink, sinktest.Target{Read: read}
//			},
//			Redelivery: sinktest.AtLeastOnce,
//		})
//	}
//
// The suite reads the target back as a list of [Record] (event id, stream
// id, version) per ordering unit, in the unit's order; [ParseEnvelope] and
// [ParseLines] turn the JSON envelopes most sinks write into records.
//
// # Timing
//
// The suite asserts no speed. Each call it expects to return (Write, Close)
// is given [Harness.Deadline] (30 s by default, for a loaded 2-core
// machine); a call that outlasts it fails the test instead of hanging it.
// Nothing is synchronised by sleeping: the suite waits for a hanging target
// to report that a request of the sink is held.
//
// # Events
//
// [Events] makes the events the suite writes, and those the sinks' own tests
// write, from a [Spec]: streams interleaved by version, several events per
// transaction, positions strictly increasing, every field of [cdc.Event]
// set but UserName and BData, correlation and causation ids on some.
package sinktest
