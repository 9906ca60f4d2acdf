package store

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// checkEvent (the check at Open) accepts exactly the records decodeReading
// decodes: valid ones, and every mutation of them either both take or both refuse.
func TestCheckEventAgreesWithDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	valid := [][]byte{
		appendReading(nil, &device.Reading{Device: "fridge1", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1,
			Unit: "", Label: "x", Aux: -5, Boot: 1 << 40, Seq: 300, DeviceTime: time.Unix(1700000000, 1), HubTime: time.Unix(1700000001, 0)}),
		appendReading(nil, &device.Reading{Device: "p", Kind: device.KindPlug, Signal: device.SignalPower, Value: -3.5}),
	}
	refused := 0
	for i := range 200000 {
		b := append([]byte(nil), valid[i%len(valid)]...)
		switch rng.IntN(4) {
		case 0:
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		case 1:
			b = b[:rng.IntN(len(b)+1)]
		case 2:
			b = append(b, byte(rng.Uint32()))
		case 3:
			for range 3 {
				b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
			}
		}
		var r device.Reading
		dErr, cErr := decodeReading(b, &r, nil), checkEvent(b)
		if (dErr == nil) != (cErr == nil) {
			t.Fatalf("%x: decodeReading says %v, checkEvent %v", b, dErr, cErr)
		}
		if cErr != nil {
			refused++
		}
	}
	for _, b := range valid {
		if err := checkEvent(b); err != nil {
			t.Fatalf("valid record refused: %v", err)
		}
	}
	if refused == 0 {
		t.Fatal("no mutation was refused: the test proves nothing")
	}
}
