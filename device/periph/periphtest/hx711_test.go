package periphtest

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
)

// readWord shifts one word out of the chip as the driver does (DOUT read after each
// falling edge, 25 pulses: gain 128), calling mid after the 12th pulse.
func readWord(t *testing.T, clk, data gpio.PinIO, mid func()) int32 {
	t.Helper()
	if data.Read() != gpio.Low {
		t.Fatal("no conversion ready")
	}
	var w int32
	for i := range 25 {
		if err := clk.Out(gpio.High); err != nil {
			t.Fatal(err)
		}
		if err := clk.Out(gpio.Low); err != nil {
			t.Fatal(err)
		}
		if i < 24 {
			w <<= 1
			if data.Read() == gpio.High {
				w |= 1
			}
		}
		if i == 11 && mid != nil {
			mid()
		}
	}
	return w
}

// A weight put on the cell while a word is being shifted out changes the next
// conversion, not the word in flight (the chip latched it): a Load in mid-word
// used to give the word's first bits from the old value and its last bits from the
// new one, a weight nobody put on the cell.
func TestLoadTakesEffectAtTheNextConversion(t *testing.T) {
	fc := clockwork.NewFakeClock()
	chip := &HX711{Samples: []int32{0x00AAAA}, Now: fc.Now}
	clk, data := chip.Pins()
	if err := clk.Out(gpio.Low); err != nil { // powers up: the first conversion settles
		t.Fatal(err)
	}
	fc.Advance(time.Second)
	if w := readWord(t, clk, data, func() { chip.Load(0x005555) }); w != 0x00AAAA {
		t.Fatalf("the word in flight read %#06x, want %#06x (the conversion before the Load)", w, 0x00AAAA)
	}
	fc.Advance(time.Second)
	if w := readWord(t, clk, data, nil); w != 0x005555 {
		t.Fatalf("the next word read %#06x, want %#06x (the weight loaded)", w, 0x005555)
	}
	d := chip.Delivered()
	if len(d) != 2 || d[0].Sample != 0x00AAAA || d[1].Sample != 0x005555 || d[0].Corrupt || d[1].Corrupt {
		t.Fatalf("delivered %+v", d)
	}
}
