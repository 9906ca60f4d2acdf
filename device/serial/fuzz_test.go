package serial

import (
	"cmp"
	"sync"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// memSink commits everything at once, from another goroutine, as device.Sink says;
// while refuse is set it refuses everything with that error, as a full store does.
type memSink struct {
	mu     sync.Mutex
	n      int
	last   []device.Reading // the readings of every Submit, in order
	refuse error
	once   error // refuses the next Submit only, with this error
}

func (s *memSink) Submit(rs []device.Reading, done func(error)) {
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			panic("invalid reading reached the sink: " + err.Error())
		}
	}
	s.mu.Lock()
	if err := cmp.Or(s.once, s.refuse); err != nil {
		s.once = nil
		s.mu.Unlock()
		go done(err)
		return
	}
	s.n += len(rs)
	s.last = append(s.last, rs...)
	s.mu.Unlock()
	go done(nil)
}

// FuzzSession feeds arbitrary intact frames (any type, any payload) to the hub side of
// the protocol after a valid Hello: it must never panic, never hand the sink an
// invalid reading, and every frame it answers must be a well-formed hub frame.
func FuzzSession(f *testing.F) {
	f.Add(byte(frame.TypeReadings), []byte{0x10, 0x01, 0x1a, 0x06, 0x08, 0x01, 0x20, 0x05, 0x29, 0x00})
	f.Add(byte(frame.TypeEvents), []byte{0x1a, 0x04, 0x08, 0x02, 0x22, 0x00})
	f.Add(byte(frame.TypeInventory), []byte{0x1a, 0x04, 0x08, 0x03, 0x20, 0x01})
	f.Add(byte(frame.TypeHello), []byte{0x0a, 0x01, 0x78})
	f.Add(byte(0x7e), []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		s, err := New(&Options{Path: "/dev/null", MaxPending: 2})
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{}
		var out []byte
		s.sess.w = writerFunc(func(p []byte) (int, error) { out = append(out, p...); return len(p), nil })
		s.sess.onHello(&fwpb.Hello{DeviceId: "f", Kind: "fridge", BootId: 9})
		for range 3 { // the same frame thrice: duplicates must be handled too
			s.sess.handle(inFrame{typ: frame.MsgType(typ), buf: payload}, sink)
			for s.sess.inflight > 0 {
				s.sess.result(<-s.results)
			}
			if err := s.sess.flush(); err != nil {
				t.Fatal(err)
			}
		}
		p := frame.NewParser(frame.MaxHubFrame)
		p.OnFault = func(e *frame.FaultError) { t.Fatalf("hub sent a damaged frame: %v", e) }
		p.Feed(out, func(f frame.Frame) {
			if !f.Type.FromHub() {
				t.Fatalf("hub sent a frame of device type %v", f.Type)
			}
			if _, err := f.Decode(); err != nil {
				t.Fatalf("hub sent an undecodable %v: %v", f.Type, err)
			}
		})
	})
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
