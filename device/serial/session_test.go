package serial

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// hub drives a session without a port and returns what it answers, in text.
type hub struct {
	t    *testing.T
	s    *Source
	sink *memSink
	out  []byte
}

func newHub(t *testing.T, committed func(string, uint64) uint64) *hub {
	return newHubWith(t, &Options{Committed: committed})
}

// newHubWith is newHub with more options.
func newHubWith(t *testing.T, o *Options) *hub {
	o.Path, o.TimeSync = "/dev/null", -1
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, s: s, sink: &memSink{}}
	s.sess.w = writerFunc(func(p []byte) (int, error) { h.out = append(h.out, p...); return len(p), nil })
	return h
}

// send hands the session one frame, lets every batch commit, and returns the answers.
func (h *hub) send(m proto.Message) string {
	t, _ := frame.TypeOf(m)
	b, err := proto.Marshal(m)
	if err != nil {
		h.t.Fatal(err)
	}
	h.s.sess.handle(inFrame{typ: t, buf: b}, h.sink)
	for h.s.sess.inflight > 0 {
		h.s.sess.result(<-h.s.results)
	}
	h.s.sess.flush()
	var got []string
	frame.NewParser(0).Feed(h.out, func(f frame.Frame) {
		m, err := f.Decode()
		if err != nil {
			h.t.Fatal(err)
		}
		switch m := m.(type) {
		case *fwpb.Ack:
			got = append(got, fmt.Sprintf("ack %d", m.Seq))
		case *fwpb.Nack:
			got = append(got, fmt.Sprintf("nack %s %d", reasonLabel(m.Reason), m.Seq))
		}
	})
	h.out = h.out[:0]
	return strings.Join(got, ", ")
}

func readings(seqs ...uint64) *fwpb.Readings {
	m := &fwpb.Readings{}
	for _, s := range seqs {
		m.Readings = append(m.Readings, &fwpb.Reading{Seq: s, Signal: fwpb.Signal_SIGNAL_POWER, Value: float64(s)})
	}
	return m
}

// SPEC.md §9's example, plus an invalid item, a batch before Hello and a hub restart.
func TestSessionAckRules(t *testing.T) {
	h := newHub(t, nil)
	steps := []struct {
		in   proto.Message
		want string
	}{
		{readings(1), "nack no_session 0"},
		{&fwpb.Hello{DeviceId: "fridge-1", Kind: "toaster-oven"}, "nack invalid 0"},
		{&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 0xB}, "ack 0"},
		{readings(1), "ack 1"},
		{readings(3), "ack 1, nack seq_gap 2"}, // 2 lost: 3 stored, ack stays at 1
		{readings(2, 3), "ack 3"},              // 2 fills the hole; 3 is a duplicate
		{readings(3), "ack 3"},                 // a retransmission is acked again
		{&fwpb.Readings{Readings: []*fwpb.Reading{{Seq: 4, Signal: 99}, {Seq: 5, Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1}}},
			"nack invalid 4, ack 5"}, // 4 refused alone and consumed
		{&fwpb.Events{Events: []*fwpb.Event{{Seq: 6, Event: &fwpb.Event_Door{Door: &fwpb.DoorEvent{State: fwpb.DoorState_DOOR_STATE_CLOSED}}}}}, "ack 6"},
		{&fwpb.Inventory{Changes: []*fwpb.InventoryChange{{Seq: 7, Action: fwpb.InventoryAction_INVENTORY_ACTION_REMOVED, Category: "dairy", Quantity: 2}}}, "ack 7"},
	}
	for i, st := range steps {
		if got := h.send(st.in); got != st.want {
			t.Fatalf("step %d (%T): got %q, want %q", i, st.in, got, st.want)
		}
	}
	if h.sink.n != 7 { // 1, 3, 2, 4 (as an error reading), 5, 6, 7
		t.Errorf("sink got %d readings, want 7", h.sink.n)
	}
	// The invalid item is consumed durably: stored as the device's error reading, so a
	// restarted hub's store (its dedupe mark) covers its sequence too.
	var inv *device.Reading
	for i := range h.sink.last {
		if h.sink.last[i].Seq == 4 {
			inv = &h.sink.last[i]
		}
	}
	if inv == nil || inv.Signal != device.SignalError || inv.Value != InvalidItemCode || !strings.HasPrefix(inv.Label, "invalid item: ") {
		t.Errorf("item 4 was not stored as an error reading: %+v", inv)
	}
	// A restarted hub answers the Hello from what the store holds.
	h2 := newHub(t, func(dev string, boot uint64) uint64 {
		if dev == "fridge-1" && boot == 0xB {
			return 7
		}
		return 0
	})
	if got := h2.send(&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 0xB}); got != "ack 7" {
		t.Errorf("after restart: %q, want ack 7", got)
	}
	if got := h2.send(readings(7, 8)); got != "ack 8" || h2.sink.n != 1 {
		t.Errorf("after restart: %q with %d stored, want ack 8 with 1", got, h2.sink.n)
	}
}

// A reading the store refuses (full, or intake stopped) is never acknowledged: the
// device gets Nack BUSY for it, keeps it, and sends it again; once the store takes
// it, the Ack covers it.
func TestSessionRefusedReadingsAreNotAcked(t *testing.T) {
	h := newHub(t, nil)
	if got := h.send(&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 0xB}); got != "ack 0" {
		t.Fatalf("hello: %q", got)
	}
	if got := h.send(readings(1)); got != "ack 1" {
		t.Fatalf("reading 1: %q", got)
	}
	h.sink.refuse = errors.New("store: quota exceeded")
	if got := h.send(readings(2, 3)); got != "nack busy 2" {
		t.Fatalf("readings the store refused: %q, want only nack busy 2 (no ack past 1)", got)
	}
	h.sink.refuse = nil
	if got := h.send(readings(2, 3)); got != "ack 3" || h.sink.n != 3 {
		t.Fatalf("sent again once the store takes them: %q with %d stored, want ack 3 with 3", got, h.sink.n)
	}
}

// errFull stands for a store that is full: a refusal that may pass.
var errFull = errors.New("store: quota exceeded")

// A batch the sink refuses for good (a reading it can never take) is acknowledged, so
// that the device does not send it for ever and what follows gets through; its items
// are stored as error readings in their place, so that their sequences are consumed
// in the store too. One refused for now is not acknowledged (Nack BUSY).
func TestSessionRejectedReadingsAreAcked(t *testing.T) {
	h := newHubWith(t, &Options{Retryable: func(err error) bool { return errors.Is(err, errFull) }})
	if got := h.send(&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 0xB}); got != "ack 0" {
		t.Fatalf("hello: %q", got)
	}
	h.sink.once = errors.New("readings rejected: impossible timestamp")
	if got := h.send(readings(1, 2)); got != "ack 2" {
		t.Fatalf("readings rejected for good: %q, want ack 2", got)
	}
	if len(h.sink.last) != 2 {
		t.Fatalf("the sink holds %+v, want two stand-ins", h.sink.last)
	}
	for i, r := range h.sink.last {
		if r.Signal != device.SignalError || r.Value != RejectedItemCode || r.Seq != uint64(i+1) || r.Boot != 0xB ||
			!strings.HasPrefix(r.Label, "rejected: readings rejected") {
			t.Errorf("stand-in %d = %+v", i, r)
		}
	}
	if n := counterOf(t, h.s.m.items.WithLabelValues(itemRejected)); n != 2 {
		t.Errorf("rejected items = %v, want 2", n)
	}
	h.sink.once = errFull
	if got := h.send(readings(3)); got != "nack busy 3" {
		t.Fatalf("a refusal that may pass: %q, want nack busy 3", got)
	}
	if got := h.send(readings(3)); got != "ack 3" || len(h.sink.last) != 3 || h.sink.last[2].Value != 3 {
		t.Fatalf("sent again: %q, sink %+v", got, h.sink.last)
	}
}

// A port is bound to the device of its first Hello: another id is refused, and the
// first device goes on being served.
func TestSessionBindsPortToOneDevice(t *testing.T) {
	h := newHub(t, nil)
	if got := h.send(&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 0xA}); got != "ack 0" {
		t.Fatalf("first hello: %q", got)
	}
	if got := h.send(&fwpb.Hello{DeviceId: "evil-1", Kind: "fridge", BootId: 0xB}); got != "nack invalid 0" {
		t.Errorf("hello with another id: %q, want nack invalid 0", got)
	}
	if got := h.send(&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 0xC}); got != "ack 0" {
		t.Errorf("the bound device rebooting: %q, want ack 0", got)
	}
	if got := h.send(readings(1)); got != "ack 1" || h.sink.last[0].Device != "fridge-1" {
		t.Errorf("readings after the refusal: %q, stored as %q", got, h.sink.last[0].Device)
	}
}

func counterOf(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
