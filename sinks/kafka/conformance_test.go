package kafka

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/sinks/sinktest"
)

// conformanceTopic is the topic of the conformance suite: 6 partitions,
// each an ordering unit, that take records of up to 20000 bytes.
const (
	conformanceTopic      = "conformance"
	conformancePartitions = 6
	conformanceLimit      = 20000
)

// TestConformance runs the sink conformance suite against a fresh
// three-broker kfake cluster per subtest. The sink delivers at least once.
// Its poison event is one whose record is larger than the topic's
// max.message.bytes: the broker refuses it with MESSAGE_TOO_LARGE (the sink
// itself would send it, being under MaxMessageBytes). The target hangs by
// holding every produce request unanswered.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Redelivery: sinktest.AtLeastOnce,
		New: func(t *testing.T) (cdc.Sink, sinktest.Target) {
			c := newCluster(t)
			createTopic(t, c, conformanceTopic, conformancePartitions,
				map[string]string{"max.message.bytes": fmt.Sprint(conformanceLimit)})
			s := newSink(t, c, conformanceTopic, Config{})
			return s, sinktest.Target{
				Read:   func(t testing.TB) []sinktest.Unit { return readUnits(t, c, conformanceTopic) },
				Block:  func(testing.TB) (<-chan struct{}, func()) { return holdProduce(c) },
				Reopen: func(t *testing.T) cdc.Sink { return newSink(t, c, conformanceTopic, Config{}) },
			}
		},
		Poison: func(e *cdc.Event) {
			e.Data = []byte(`"` + strings.Repeat("p", conformanceLimit+1000) + `"`)
		},
	})
}

// readUnits reads the topic: one unit per partition, the records in
// offset order, each known by the envelope it holds.
func readUnits(t testing.TB, c *kfake.Cluster, topic string) []sinktest.Unit {
	t.Helper()
	var units []sinktest.Unit
	for p, rs := range readAll(t, c, topic) {
		u := sinktest.Unit{Name: fmt.Sprintf("%s/%d", topic, p)}
		for _, r := range rs {
			rec, err := sinktest.ParseEnvelope(r.Value)
			if err != nil {
				t.Fatalf("record %s/%d at offset %d: %v", topic, p, r.Offset, err)
			}
			if id, _ := recordHeader(r, HeaderEventID); id != rec.ID {
				t.Fatalf("record %s/%d at offset %d: header %s is %q, the envelope's id %q", topic, p, r.Offset, HeaderEventID, id, rec.ID)
			}
			u.Records = append(u.Records, rec)
		}
		units = append(units, u)
	}
	return units
}

// holdProduce makes the cluster hold every produce request, unanswered,
// until unblock is called; then they are handled as usual. hung is closed
// when the first one arrives.
func holdProduce(c *kfake.Cluster) (hung <-chan struct{}, unblock func()) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var arrivedOnce, releaseOnce sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-release:
			return nil, nil, false
		default:
		}
		arrivedOnce.Do(func() { close(arrived) })
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	return arrived, func() { releaseOnce.Do(func() { close(release) }) }
}
