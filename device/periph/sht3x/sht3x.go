// Package sht3x reads a Sensirion SHT30/SHT31/SHT35 temperature and humidity sensor
// over I²C, in single-shot mode without clock stretching, checking the CRC-8 of every
// word it reads.
//
// # Protocol (datasheet SHT3x-DIS, §4)
//
// A measurement is the command 0x2400 (single shot, high repeatability, clock
// stretching disabled) followed, after at most 15.5 ms, by a read of six bytes:
//
//	+--------+--------+-------+--------+--------+-------+
//	| T MSB  | T LSB  | CRC T | RH MSB | RH LSB | CRC RH|
//	+--------+--------+-------+--------+--------+-------+
//
// Each CRC is CRC-8, polynomial 0x31, initial value 0xFF, over the two bytes before
// it (the datasheet's example: 0xBEEF → 0x92). T = -45 + 175·S_T/65535 °C and
// RH = 100·S_RH/65535 %RH. A read before the measurement is done is NACKed by the
// sensor; a bus stuck at 0x00 or 0xFF fails the CRC.
package sht3x

import (
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// Addresses the sensor answers on: ADDR pin low (the usual breakout) or high.
const (
	AddrLow  uint16 = 0x44
	AddrHigh uint16 = 0x45
)

// Commands used.
var (
	cmdMeasure = []byte{0x24, 0x00} // single shot, high repeatability, no clock stretching
	cmdStatus  = []byte{0xF3, 0x2D} // read status register
)

// MeasureTime is the longest a high-repeatability measurement takes (datasheet
// Table 4: 15.5 ms at most).
const MeasureTime = 16 * time.Millisecond

// Errors a measurement can end in. An I²C error (a NACK: sensor absent or busy, a
// bus gone) is returned wrapped as it came from the bus.
var (
	// ErrCRC: a word's checksum did not match (noise on the bus, a bus stuck at 0 or
	// 1, a read out of step).
	ErrCRC = errors.New("sht3x: CRC mismatch")
	// ErrRange: a value outside the sensor's range (-40..125 °C).
	ErrRange = errors.New("sht3x: value out of the sensor's range")
)

// Env is one measurement.
type Env struct {
	Temperature float64 // °C
	Humidity    float64 // %RH, 0..100
	RawT, RawRH uint16  // the sensor's words, for stuck-value detection
}

// Dev is one sensor on a bus.
type Dev struct {
	d     i2c.Dev
	sleep func(time.Duration)
}

// Opts configure a Dev; nil means the defaults.
type Opts struct {
	// Sleep waits for the measurement (default time.Sleep). Tests pass a no-op.
	Sleep func(time.Duration)
}

// New returns the sensor at addr on bus after reading its status register (with its
// CRC) to check that an SHT3x answers there.
func New(bus i2c.Bus, addr uint16, o *Opts) (*Dev, error) {
	d := &Dev{d: i2c.Dev{Bus: bus, Addr: addr}, sleep: time.Sleep}
	if o != nil && o.Sleep != nil {
		d.sleep = o.Sleep
	}
	var st [3]byte
	if err := d.d.Tx(cmdStatus, nil); err != nil {
		return nil, fmt.Errorf("sht3x at %#x: status command: %w", addr, err)
	}
	if err := d.d.Tx(nil, st[:]); err != nil {
		return nil, fmt.Errorf("sht3x at %#x: status read: %w", addr, err)
	}
	if CRC8(st[:2]) != st[2] {
		return nil, fmt.Errorf("sht3x at %#x: status register: %w (is it an SHT3x?)", addr, ErrCRC)
	}
	return d, nil
}

// Sense makes one single-shot measurement.
func (d *Dev) Sense() (Env, error) {
	if err := d.d.Tx(cmdMeasure, nil); err != nil {
		return Env{}, fmt.Errorf("sht3x at %#x: measure command: %w", d.d.Addr, err)
	}
	d.sleep(MeasureTime)
	var b [6]byte
	if err := d.d.Tx(nil, b[:]); err != nil {
		return Env{}, fmt.Errorf("sht3x at %#x: read: %w", d.d.Addr, err)
	}
	return Decode(b)
}

// Decode checks and converts the six bytes of a measurement.
func Decode(b [6]byte) (Env, error) {
	if CRC8(b[0:2]) != b[2] {
		return Env{}, fmt.Errorf("%w: temperature word % x, CRC %#02x, want %#02x", ErrCRC, b[0:2], b[2], CRC8(b[0:2]))
	}
	if CRC8(b[3:5]) != b[5] {
		return Env{}, fmt.Errorf("%w: humidity word % x, CRC %#02x, want %#02x", ErrCRC, b[3:5], b[5], CRC8(b[3:5]))
	}
	e := Env{RawT: uint16(b[0])<<8 | uint16(b[1]), RawRH: uint16(b[3])<<8 | uint16(b[4])}
	e.Temperature = -45 + 175*float64(e.RawT)/65535
	e.Humidity = 100 * float64(e.RawRH) / 65535
	if e.Temperature < -40 || e.Temperature > 125 {
		return e, fmt.Errorf("%w: %.2f °C", ErrRange, e.Temperature)
	}
	return e, nil
}

// crcTable is CRC-8/0x31 for every byte value, MSB first.
var crcTable = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x31
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC8 is the sensor's checksum: CRC-8, polynomial 0x31 (x⁸+x⁵+x⁴+1), initial 0xFF,
// no reflection, no final XOR.
func CRC8(b []byte) byte {
	c := byte(0xFF)
	for _, x := range b {
		c = crcTable[c^x]
	}
	return c
}
