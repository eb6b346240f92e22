// Package route renders destination names (Kafka topics, Elasticsearch
// indices, file paths) from events, with templates written in the
// configuration (SPEC §4), e.g. "helpdesk.{{.Type}}" or
// "out/{{.TenantID}}/{{.Type}}.jsonl".
//
// It sits between the configuration and the sinks: config parses every
// template once with [Parse], so that a mistake is a configuration error with
// its file and line, and a sink calls [Template.Render] for each event it
// writes.
//
// # Syntax
//
// Templates are Go text/template text over the fields of [cdc.Event]:
//
//	ID SeqID StreamID Version Type DotnetType TenantID Timestamp Data
//	CorrelationID CausationID Headers UserName LSN CommitTime TxID
//
// Each renders as text: strings as they are (empty when the column is NULL or
// absent), numbers in decimal, LSN as PostgreSQL prints it ("0/16B3748"),
// Data and Headers as their JSON text, Timestamp and CommitTime in RFC 3339
// in UTC. The time fields also have the methods of time.Time, in UTC:
// {{.Timestamp.Format "2006.01"}} names a monthly index. Besides the
// text/template built-ins (printf, slice, eq, if, with, ...), the functions
// lower and upper change the case of a string: {{lower .TenantID}}.
//
// [Parse] rejects a reference to anything but these fields, naming the field
// and listing the valid ones; {{.}} on its own (the whole event), {{define}},
// {{template}} and {{block}}. It then renders the template once for a sample
// event, so that a misspelled method ({{.Timestamp.Formt "2006"}}) or a
// wrong function call is also caught when the configuration is read (an
// index out of range in slice or index is not: it depends on the event).
//
// # Rendering
//
// A template that references no event field is a constant: it is rendered
// once by Parse and Render returns it without executing anything. A template
// that references only low-cardinality fields (Type, TenantID, DotnetType)
// keeps its results in a bounded cache keyed by those fields' values, so
// rendering the name of a known event type allocates nothing. Other templates
// are executed for every event.
//
// Rendering an empty name is an error, and so are a name longer than
// [MaxLen] bytes and any error of the template's execution; both depend only on the event, so they are permanent for it:
// a sink reports them as a [cdc.RejectedError].
//
// # Security
//
// Only configuration text is ever parsed as a template. Event fields are
// values the template prints: whatever an event holds ("{{", "../", a NUL
// byte) ends up as text of the rendered name and is never interpreted. Sinks
// must still check that a name is acceptable for their target (the file sink
// refuses a path that leaves its directory).
//
// A [Template] is safe for concurrent use.
package route
