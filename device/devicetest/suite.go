package devicetest

import (
	"context"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/poll"
)

// Outcome is what a device learned of one of its messages.
type Outcome int

// The outcomes of a message, as its device sees them.
const (
	// Pending: nothing yet.
	Pending Outcome = iota
	// Acked: acknowledged; the device may forget it.
	Acked
	// Refused: the device knows it was not taken and keeps it to send again: an
	// explicit refusal (a serial Nack BUSY, an MQTT 5 PUBACK 0x97), a later message
	// acknowledged while it was not (MQTT acknowledges in order), or the connection
	// closed with it unacknowledged.
	Refused
)

func (o Outcome) String() string {
	return [...]string{"pending", "acked", "refused"}[o]
}

// Device is the simulated device a Harness puts in front of its source.
type Device interface {
	// Send has the device send one message carrying one reading of value v (a
	// whole number from 1 to 1e6, unique within a test). It waits until the source
	// can receive (the port open, the session subscribed), not for an answer.
	Send(t testing.TB, v float64)
	// First is the first definitive outcome of the message carrying v: once it is
	// Acked or Refused it does not change (a message refused and then sent again
	// and acknowledged stays Refused here).
	First(v float64) Outcome
	// Acked reports whether v's message is acknowledged by now.
	Acked(v float64) bool
	// Sync returns once every acknowledgement the source sent before the call has
	// reached the device: a round trip the transport answers in order behind them
	// (a serial Hello's Ack). A no-op where the transport has none.
	Sync(t testing.TB)
}

// Instance is one source under test with its device.
type Instance struct {
	Source device.Source
	Device Device
	// Rejected reads the source's count of messages (or readings) refused for good
	// and acknowledged.
	Rejected func() float64
	// Owned, when set, is called after Run returned: it fails when something the
	// harness owns (the device's end of the link, the broker) was closed by the source.
	Owned func() error
}

// Harness runs one kind of source against the suite.
type Harness struct {
	// Start returns a fresh source and its device. The source's classification of
	// refusals must take Sink.Retryable as one that may pass and Sink.Permanent as
	// final: cmd/hearth gives every source ingest.Retryable.
	Start func(t *testing.T) Instance
	// Sink configures the Sink each test hands the source.
	Sink SinkOptions
	// NoDeviceAcks, when set, says why the device gets no acknowledgement (a reed
	// switch on a GPIO pin): its Device reports Acked once a reading is committed and
	// never Refused. AckAfterCommit is then skipped with that reason, and the refusal
	// checks ask instead that a reading refused for now is committed later (the source
	// submits it again) and one refused for good is counted.
	NoDeviceAcks string
}

// Run checks that a source keeps the promises every source makes (see the package
// documentation).
func Run(t *testing.T, h Harness) {
	t.Helper()
	t.Run("Name", func(t *testing.T) { name(t, h) })
	t.Run("RunReturnsOnCancel", func(t *testing.T) { cancelled(t, h) })
	t.Run("ReadingsReachSinkValid", func(t *testing.T) { valid(t, h) })
	t.Run("AckAfterCommit", func(t *testing.T) { ackAfterCommit(t, h) })
	t.Run("PermanentRefusalAcked", func(t *testing.T) { permanent(t, h) })
	t.Run("RetryableRefusalNotAcked", func(t *testing.T) { retryable(t, h) })
}

// wait is how long the suite waits for a source to act: long, so that a loaded
// machine does not fail a test; a source that keeps its promises is far quicker.
const wait = 30 * time.Second

// running starts in's source on a new Sink and stops it when the test ends.
type running struct {
	in     Instance
	sink   *Sink
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, h Harness) *running {
	t.Helper()
	in := h.Start(t)
	r := &running{in: in, sink: NewSink(&h.Sink), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- in.Source.Run(ctx, r.sink) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v after its context was cancelled, want nil", err)
		}
	case <-time.After(wait):
		t.Fatalf("Run did not return within %v of its context being cancelled", wait)
	}
	r.sink.Stop()
}

func name(t *testing.T, h Harness) {
	r := start(t, h)
	n := r.in.Source.Name()
	if n == "" {
		t.Fatal("Name() is empty")
	}
	r.in.Device.Send(t, 1)
	poll.Until(t, "the first reading committed", wait, func() bool { return r.sink.Has(1) })
	if got := r.in.Source.Name(); got != n {
		t.Errorf("Name() changed while running: %q, then %q", n, got)
	}
	r.stop(t)
	if got := r.in.Source.Name(); got != n {
		t.Errorf("Name() changed after Run: %q, then %q", n, got)
	}
}

func cancelled(t *testing.T, h Harness) {
	// At once, before the source has done anything.
	r := start(t, h)
	r.stop(t)
	// And once it serves its device.
	r = start(t, h)
	r.in.Device.Send(t, 1)
	poll.Until(t, "the reading acknowledged", wait, func() bool { return r.in.Device.Acked(1) })
	r.stop(t)
	if n := r.sink.Late(); n != 0 {
		t.Errorf("%d submissions after Run returned", n)
	}
	if r.in.Owned != nil {
		if err := r.in.Owned(); err != nil {
			t.Errorf("after Run returned, what the source does not own: %v", err)
		}
	}
}

func valid(t *testing.T, h Harness) {
	r := start(t, h)
	vs := []float64{11, 12, 13, 14, 15}
	for _, v := range vs {
		r.in.Device.Send(t, v)
	}
	poll.Until(t, "every reading acknowledged", wait, func() bool {
		for _, v := range vs {
			if !r.in.Device.Acked(v) {
				return false
			}
		}
		return true
	})
	for _, err := range r.sink.Invalid() {
		t.Errorf("an invalid reading reached the sink: %v", err)
	}
	var got []float64
	for _, rd := range r.sink.Committed() {
		got = append(got, rd.Value)
		if !rd.HubTime.IsZero() {
			t.Errorf("reading %v carries a hub time: ingest stamps it, not a source", rd.Value)
		}
	}
	if len(got) != len(vs) {
		t.Fatalf("committed %v, want %v once each", got, vs)
	}
	for i := range vs {
		if got[i] != vs[i] {
			t.Fatalf("committed %v, want %v in the order sent", got, vs)
		}
	}
}

func ackAfterCommit(t *testing.T, h Harness) {
	if h.NoDeviceAcks != "" {
		t.Skip("the device gets no acknowledgement: " + h.NoDeviceAcks)
	}
	r := start(t, h)
	r.sink.Next(Hold)
	r.in.Device.Send(t, 21)
	poll.Until(t, "the sink to hold the reading", wait, func() bool { return r.sink.Held() == 1 })
	r.in.Device.Sync(t)
	if o := r.in.Device.First(21); o != Pending {
		t.Fatalf("the message is %v before the sink committed it", o)
	}
	r.sink.Release()
	poll.Until(t, "the acknowledgement after the commit", wait, func() bool { return r.in.Device.Acked(21) })
	if o := r.in.Device.First(21); o != Acked {
		t.Errorf("first outcome %v, want acked", o)
	}
}

func permanent(t *testing.T, h Harness) {
	r := start(t, h)
	r.in.Device.Send(t, 31) // the source is serving
	poll.Until(t, "the first reading acknowledged", wait, func() bool { return r.in.Device.Acked(31) })
	before := r.in.Rejected()
	r.sink.Next(Reject)
	r.in.Device.Send(t, 32)
	poll.Until(t, "the sink to refuse the message", wait, func() bool { return r.sink.Refused() == 1 })
	// A later message shows where the device stands (MQTT acknowledges in order), and
	// must get through.
	r.in.Device.Send(t, 33)
	poll.Until(t, "the message after it committed and acknowledged", wait, func() bool {
		return r.sink.Has(33) && r.in.Device.Acked(33)
	})
	if h.NoDeviceAcks == "" {
		if o := r.in.Device.First(32); o != Acked {
			t.Errorf("a message the sink refused for good is %v first, want acked (sent again, it would be refused for ever)", o)
		}
	}
	// Counted when refused, which came before the later message was taken.
	if n := r.in.Rejected(); n <= before {
		t.Errorf("rejected count %v, was %v: the refusal is not counted", n, before)
	}
}

func retryable(t *testing.T, h Harness) {
	r := start(t, h)
	r.in.Device.Send(t, 41)
	poll.Until(t, "the first reading acknowledged", wait, func() bool { return r.in.Device.Acked(41) })
	r.sink.Next(Retry)
	r.in.Device.Send(t, 42)
	poll.Until(t, "the sink to refuse the message", wait, func() bool { return r.sink.Refused() == 1 })
	// A later message shows where the device stands: MQTT acknowledges in order, and
	// the source must recover once the sink takes readings again.
	r.in.Device.Send(t, 43)
	poll.Until(t, "the message after it committed and acknowledged", wait, func() bool {
		return r.sink.Has(43) && r.in.Device.Acked(43)
	})
	if h.NoDeviceAcks != "" {
		poll.Until(t, "the reading refused for now committed later", wait, func() bool { return r.sink.Has(42) })
		return
	}
	if o := r.in.Device.First(42); o != Refused {
		t.Fatalf("a message the sink refused for now is %v first, want refused (the device keeps it and sends it again)", o)
	}
}
