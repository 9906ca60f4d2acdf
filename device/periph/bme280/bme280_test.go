package bme280

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// The trimming parameters of Bosch's worked example (BMP280 datasheet
// BST-BMP280-DS001 §3.12, Table 16; the BME280 compensates temperature and pressure
// with the same formulas), and humidity parameters of a real BME280 breakout.
var example = Calibration{
	T1: 27504, T2: 26435, T3: -1000,
	P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
	H1: 75, H2: 362, H3: 0, H4: 313, H5: 50, H6: 30,
}

const (
	exampleAdcT = 519888 // → t_fine 128422, T 25.08 °C
	exampleAdcP = 415148 // → p 100653.27 Pa
	exampleAdcH = 0x6A3C
)

// The datasheet's example: t_fine = 128422, T = 2508 (25.08 °C), and the 64-bit
// pressure 100653 Pa (the double-precision formula gives 100653.27 Pa).
func TestCompensationDatasheetExample(t *testing.T) {
	c := example
	temp, tFine := c.CompensateT(exampleAdcT)
	if tFine != 128422 || temp != 2508 {
		t.Errorf("CompensateT(519888) = %d, t_fine %d; want 2508, 128422", temp, tFine)
	}
	p := float64(c.CompensateP(exampleAdcP, tFine)) / 256
	if math.Abs(p-100653.27) > 0.5 {
		t.Errorf("CompensateP(415148) = %.2f Pa, want 100653.27", p)
	}
	if math.Abs(p-refP(&c, exampleAdcP, refTFine(&c, exampleAdcT))) > 1 {
		t.Errorf("pressure %.2f disagrees with the double-precision formula", p)
	}
}

// The integer formulas agree with the datasheet's double-precision ones (§8.1) over
// the ranges a sensor produces: temperature within 0.01 °C, pressure within 1 Pa,
// humidity within 0.05 %RH.
func TestCompensationMatchesDoubleFormula(t *testing.T) {
	c := example
	for adcT := int32(400000); adcT <= 600000; adcT += 7919 {
		temp, tFine := c.CompensateT(adcT)
		ft := refTFine(&c, adcT)
		if math.Abs(float64(temp)/100-ft/5120) > 0.011 {
			t.Fatalf("adc_T %d: int %.2f °C, double %.4f °C", adcT, float64(temp)/100, ft/5120)
		}
		for adcP := int32(250000); adcP <= 600000; adcP += 35317 {
			ip := float64(c.CompensateP(adcP, tFine)) / 256
			if fp := refP(&c, adcP, ft); math.Abs(ip-fp) > 1 {
				t.Fatalf("adc_T %d adc_P %d: int %.2f Pa, double %.2f Pa", adcT, adcP, ip, fp)
			}
		}
		for adcH := int32(20000); adcH <= 40000; adcH += 1237 {
			ih := float64(c.CompensateH(adcH, tFine)) / 1024
			if fh := refH(&c, adcH, ft); math.Abs(ih-fh) > 0.05 {
				t.Fatalf("adc_T %d adc_H %d: int %.3f %%RH, double %.3f %%RH", adcT, adcH, ih, fh)
			}
		}
	}
}

// refTFine, refP, refH: the datasheet's floating-point compensation (BME280 §8.1),
// written independently of the integer code under test.
func refTFine(c *Calibration, adcT int32) float64 {
	a := float64(adcT)
	v1 := (a/16384 - float64(c.T1)/1024) * float64(c.T2)
	v2 := (a/131072 - float64(c.T1)/8192) * (a/131072 - float64(c.T1)/8192) * float64(c.T3)
	return v1 + v2
}

func refP(c *Calibration, adcP int32, tFine float64) float64 {
	v1 := tFine/2 - 64000
	v2 := v1 * v1 * float64(c.P6) / 32768
	v2 += v1 * float64(c.P5) * 2
	v2 = v2/4 + float64(c.P4)*65536
	v1 = (float64(c.P3)*v1*v1/524288 + float64(c.P2)*v1) / 524288
	v1 = (1 + v1/32768) * float64(c.P1)
	p := 1048576 - float64(adcP)
	p = (p - v2/4096) * 6250 / v1
	v1 = float64(c.P9) * p * p / 2147483648
	v2 = p * float64(c.P8) / 32768
	return p + (v1+v2+float64(c.P7))/16
}

func refH(c *Calibration, adcH int32, tFine float64) float64 {
	h := tFine - 76800
	h = (float64(adcH) - (float64(c.H4)*64 + float64(c.H5)/16384*h)) *
		(float64(c.H2) / 65536 * (1 + float64(c.H6)/67108864*h*(1+float64(c.H3)/67108864*h)))
	h *= 1 - float64(c.H1)*h/524288
	return min(max(h, 0), 100)
}

// calibBytes encodes cal as the chip stores it: 0x88..0xA1 and 0xE1..0xE7.
func calibBytes(c Calibration) (b1 [26]byte, b2 [7]byte) {
	le := binary.LittleEndian
	for i, v := range []uint16{c.T1, uint16(c.T2), uint16(c.T3), c.P1, uint16(c.P2), uint16(c.P3), uint16(c.P4),
		uint16(c.P5), uint16(c.P6), uint16(c.P7), uint16(c.P8), uint16(c.P9)} {
		le.PutUint16(b1[2*i:], v)
	}
	b1[25] = c.H1
	le.PutUint16(b2[0:], uint16(c.H2))
	b2[2] = c.H3
	b2[3] = byte(c.H4 >> 4)
	b2[4] = byte(c.H4&0x0F) | byte(c.H5&0x0F)<<4
	b2[5] = byte(c.H5 >> 4)
	b2[6] = byte(c.H6)
	return b1, b2
}

func dataBytes(adcP, adcT, adcH int32) []byte {
	return []byte{byte(adcP >> 12), byte(adcP >> 4), byte(adcP << 4), byte(adcT >> 12), byte(adcT >> 4), byte(adcT << 4),
		byte(adcH >> 8), byte(adcH)}
}

// openOps is what New does at addr: chip id, both calibration blocks, config.
func openOps(addr uint16, id byte, c Calibration) []i2ctest.IO {
	b1, b2 := calibBytes(c)
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xD0}, R: []byte{id}},
		{Addr: addr, W: []byte{0x88}, R: b1[:]},
		{Addr: addr, W: []byte{0xE1}, R: b2[:]},
		{Addr: addr, W: []byte{0xF5, 0x00}},
	}
}

// senseOps is one forced-mode measurement: ctrl_hum, ctrl_meas (osrs ×1, forced),
// the status polls, the data.
func senseOps(addr uint16, status []byte, data []byte) []i2ctest.IO {
	ops := []i2ctest.IO{{Addr: addr, W: []byte{0xF2, 0x01}}, {Addr: addr, W: []byte{0xF4, 0x25}}}
	for _, s := range status {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0xF3}, R: []byte{s}})
	}
	if data != nil {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0xF7}, R: data})
	}
	return ops
}

func noSleep(time.Duration) {}

// The whole driver over a played-back bus: the calibration is read back as written
// (H4 and H5 share a byte), and the example's raw values come out as the example
// says.
func TestSensePlayback(t *testing.T) {
	ops := openOps(AddrLow, 0x60, example)
	ops = append(ops, senseOps(AddrLow, []byte{0x08, 0x00}, dataBytes(exampleAdcP, exampleAdcT, exampleAdcH))...)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	d, err := New(bus, AddrLow, &Opts{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	if d.Calibration() != example {
		t.Fatalf("calibration read back as %+v\nwant %+v", d.Calibration(), example)
	}
	e, err := d.Sense()
	if err != nil {
		t.Fatal(err)
	}
	wantH := refH(&example, exampleAdcH, refTFine(&example, exampleAdcT))
	if e.Temperature != 25.08 || math.Abs(e.Pressure-1006.5327) > 0.005 || math.Abs(e.Humidity-wantH) > 0.05 {
		t.Errorf("Sense = %+v; want 25.08 °C, 1006.53 hPa, %.2f %%RH", e, wantH)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestGarbage(t *testing.T) {
	t.Run("BMP280", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: openOps(AddrHigh, 0x58, example)[:1], DontPanic: true}
		if _, err := New(bus, AddrHigh, nil); !errors.Is(err, ErrChipID) {
			t.Errorf("chip id 0x58: %v, want ErrChipID", err)
		}
	})
	t.Run("calibration all 0xFF", func(t *testing.T) {
		ops := openOps(AddrLow, 0x60, example)[:3]
		for i := range ops[1].R {
			ops[1].R[i] = 0xFF
		}
		if _, err := New(&i2ctest.Playback{Ops: ops, DontPanic: true}, AddrLow, nil); !errors.Is(err, ErrCalibration) {
			t.Errorf("calibration all 0xFF: %v, want ErrCalibration", err)
		}
	})
	for _, c := range []struct {
		name   string
		status []byte
		data   []byte
		want   error
	}{
		{"reset value", []byte{0}, []byte{0x80, 0, 0, 0x80, 0, 0, 0x80, 0}, ErrNoData},
		{"never finishes", []byte{8, 8, 8, 8}, nil, ErrBusy},
		{"impossible temperature", []byte{0}, dataBytes(exampleAdcP, 1040000, exampleAdcH), ErrRange},
	} {
		t.Run(c.name, func(t *testing.T) {
			ops := append(openOps(AddrLow, 0x60, example), senseOps(AddrLow, c.status, c.data)...)
			bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
			d, err := New(bus, AddrLow, &Opts{Sleep: noSleep})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Sense(); !errors.Is(err, c.want) {
				t.Errorf("Sense: %v, want %v", err, c.want)
			}
			if err := bus.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}
