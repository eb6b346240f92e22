package workload

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"

	"github.com/martencdc/cdc/internal/marten"
)

// padProperty and padEnd wrap the padding added to a body: the body's
// closing brace is replaced by padProperty, the padding text and padEnd.
const (
	padProperty = `,"Notes":"`
	padEnd      = `"}`
)

// padSentence is repeated to make the padding text: plain ASCII, nothing
// for JSON to escape.
const padSentence = "Customer called again, the problem is still there after a restart. "

// incidentPrefix starts every Helpdesk body: the incident id comes first.
var incidentPrefix = []byte(`{"IncidentId":"`)

// generator makes the events of a writer's transactions from the Helpdesk
// sample. It is not safe for concurrent use.
type generator struct {
	h       *marten.Helpdesk
	pending []marten.NewEvent // events generated and not handed out yet
	size    int               // PayloadBytes
	pad     string            // padding text, at least size bytes
}

// newGenerator returns a generator drawing from rng whose bodies are
// padded to about size bytes (0: not padded).
func newGenerator(rng *rand.Rand, size int) *generator {
	g := &generator{h: marten.NewHelpdesk(rng), size: size}
	if size > 0 {
		g.pad = strings.Repeat(padSentence, size/len(padSentence)+1)
	}
	return g
}

// events returns n new events for the stream. Their types follow the
// lifecycles of Helpdesk incidents, interleaved: a stream gets the events
// of several incidents, with its own id as their IncidentId.
func (g *generator) events(streamID string, n int) []marten.NewEvent {
	out := make([]marten.NewEvent, n)
	for i := range out {
		if len(g.pending) == 0 {
			_, g.pending = g.h.Next()
		}
		out[i], g.pending = g.pending[0], g.pending[1:]
		out[i].Data = g.body(out[i].Data, streamID)
	}
	return out
}

// body returns a Helpdesk body with streamID as its IncidentId (when it is
// a uuid) and padded to the generator's size. It may modify b.
func (g *generator) body(b json.RawMessage, streamID string) json.RawMessage {
	if len(streamID) == 36 && bytes.HasPrefix(b, incidentPrefix) && len(b) > len(incidentPrefix)+36 && b[len(incidentPrefix)+36] == '"' {
		copy(b[len(incidentPrefix):], streamID)
	}
	padding := g.size - len(b) - len(padProperty) - len(padEnd) + 1 // +1: the brace replaced
	if padding <= 0 || len(b) < 2 || b[len(b)-1] != '}' {
		return b
	}
	out := make([]byte, 0, g.size)
	out = append(out, b[:len(b)-1]...)
	out = append(out, padProperty...)
	out = append(out, g.pad[:padding]...)
	out = append(out, padEnd...)
	return out
}
