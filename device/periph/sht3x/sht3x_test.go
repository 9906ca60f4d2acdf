package sht3x

import (
	"errors"
	"math"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/hearth-iot/hearth/device/periph/periphtest"
)

// The datasheet's CRC example (SHT3x-DIS Table 19): 0xBEEF → 0x92; and the table
// against the bitwise reference over every two-byte word.
func TestCRC8(t *testing.T) {
	if got := CRC8([]byte{0xBE, 0xEF}); got != 0x92 {
		t.Fatalf("CRC8(0xBEEF) = %#02x, want 0x92 (datasheet)", got)
	}
	for w := range 1 << 16 {
		b := []byte{byte(w >> 8), byte(w)}
		if got, want := CRC8(b), periphtest.CRC31(b); got != want {
			t.Fatalf("CRC8(%#04x) = %#02x, reference %#02x", w, got, want)
		}
	}
}

// playback is the status read New makes, then one measurement returning b.
func playback(addr uint16, meas ...[]byte) *i2ctest.Playback {
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{0xF3, 0x2D}},
		{Addr: addr, R: []byte{0x80, 0x10, periphtest.CRC31([]byte{0x80, 0x10})}},
	}
	for _, m := range meas {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0x24, 0x00}}, i2ctest.IO{Addr: addr, R: m})
	}
	return &i2ctest.Playback{Ops: ops, DontPanic: true}
}

func TestSensePlayback(t *testing.T) {
	bus := playback(AddrHigh,
		[]byte{0xBE, 0xEF, 0x92, 0xBE, 0xEF, 0x92}, // the datasheet's CRC example as both words
		[]byte{0x66, 0x66, periphtest.CRC31([]byte{0x66, 0x66}), 0x00, 0x00, 0x81},
	)
	var waited []time.Duration
	d, err := New(bus, AddrHigh, &Opts{Sleep: func(d time.Duration) { waited = append(waited, d) }})
	if err != nil {
		t.Fatal(err)
	}
	// 0xBEEF = 48879: T = -45 + 175·48879/65535 = 85.5230 °C, RH = 100·48879/65535 = 74.5846 %.
	e, err := d.Sense()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(e.Temperature-85.5230) > 0.0001 || math.Abs(e.Humidity-74.5846) > 0.0001 || e.RawT != 0xBEEF {
		t.Errorf("BEEF/BEEF = %+v, want 85.5230 °C, 74.5846 %%RH", e)
	}
	// 0x6666 = 26214 = 65535·70/175: exactly 25 °C; 0x0000 (CRC 0x81): 0 %RH.
	if e, err = d.Sense(); err != nil || e.Temperature != 25 || e.Humidity != 0 {
		t.Errorf("6666/0000 = %+v, %v; want 25 °C, 0 %%RH", e, err)
	}
	if len(waited) != 2 || waited[0] < 15500*time.Microsecond {
		t.Errorf("waits %v, want two of at least 15.5ms (datasheet max measurement time)", waited)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

// A wrong CRC, and a bus stuck low or high, are ErrCRC; a temperature the sensor
// cannot produce is ErrRange.
func TestDecodeGarbage(t *testing.T) {
	for _, c := range []struct {
		name string
		b    [6]byte
		want error
	}{
		{"crc off by one", [6]byte{0xBE, 0xEF, 0x93, 0xBE, 0xEF, 0x92}, ErrCRC},
		{"humidity crc", [6]byte{0xBE, 0xEF, 0x92, 0xBE, 0xEF, 0x00}, ErrCRC},
		{"bus stuck high", [6]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, ErrCRC},
		{"bus stuck low", [6]byte{}, ErrCRC},
		{"below -40 °C", [6]byte{0x00, 0x01, periphtest.CRC31([]byte{0, 1}), 0x00, 0x00, 0x81}, ErrRange},
		{"above 125 °C", [6]byte{0xFF, 0xFE, periphtest.CRC31([]byte{0xFF, 0xFE}), 0x00, 0x00, 0x81}, ErrRange},
	} {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: % x: err %v, want %v", c.name, c.b, err, c.want)
		}
	}
}

// No sensor at the address: New fails with the bus's NACK, which callers can tell.
func TestAbsentNACK(t *testing.T) {
	bus := periphtest.NewBus("i2c-1", nil)
	_, err := New(bus, AddrLow, nil)
	if !errors.Is(err, syscall.EREMOTEIO) {
		t.Fatalf("New on an empty bus: %v, want EREMOTEIO", err)
	}
}
