// Package ds18b20 reads a Maxim DS18B20 1-Wire temperature probe through the Linux
// kernel's w1 driver (w1-gpio and w1_therm), from its sysfs file.
//
// # The w1_slave file
//
// Reading /sys/bus/w1/devices/28-<serial>/w1_slave makes the kernel start a
// conversion (up to 750 ms at 12 bits), read the nine scratchpad bytes and check
// their CRC. It prints two lines:
//
//	72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//	72 01 4b 46 7f ff 0e 10 57 t=23125
//
// The first ends in YES when the CRC matched (NO otherwise); the second gives the
// temperature in m°C. Parse trusts neither alone: it checks the YES, checks the
// Dallas CRC-8 of the bytes itself, and checks that t= is what bytes 0–1 say
// (a signed 16-bit count of 1/16 °C). 85 °C (0x0550) is the scratchpad's power-on
// value: a probe that lost power between conversion and read reports it, so it is
// refused as ErrPowerOn.
package ds18b20

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Family is the 1-Wire family code of the DS18B20: its sysfs names start "28-".
const Family = "28"

// Errors.
var (
	// ErrCRC: the kernel reported a CRC mismatch (NO), or the bytes fail our check.
	ErrCRC = errors.New("ds18b20: CRC mismatch")
	// ErrFormat: the file is not what w1_therm writes (a probe gone mid-read, all
	// zeros from a shorted bus).
	ErrFormat = errors.New("ds18b20: unreadable w1_slave")
	// ErrPowerOn: the scratchpad holds its power-on value, 85 °C.
	ErrPowerOn = errors.New("ds18b20: power-on value 85 °C (no conversion)")
	// ErrRange: outside the probe's range (-55..125 °C), or t= disagrees with the
	// scratchpad.
	ErrRange = errors.New("ds18b20: value out of the probe's range")
)

// Reading is one conversion.
type Reading struct {
	Celsius float64
	Raw     int16 // scratchpad bytes 0–1: 1/16 °C
}

// Read reads the probe whose sysfs directory is dir (the w1_slave file within it).
func Read(dir string) (Reading, error) {
	b, err := os.ReadFile(filepath.Join(dir, "w1_slave"))
	if err != nil {
		return Reading{}, fmt.Errorf("ds18b20: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return r, fmt.Errorf("%s: %w", dir, err)
	}
	return r, nil
}

// Parse checks and decodes the content of a w1_slave file.
func Parse(b []byte) (Reading, error) {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 2 {
		return Reading{}, fmt.Errorf("%w: %d lines, want 2", ErrFormat, len(lines))
	}
	l1, l2 := bytes.TrimSpace(lines[0]), bytes.TrimSpace(lines[1])
	sp, ok := scratchpad(l1)
	if !ok {
		return Reading{}, fmt.Errorf("%w: first line %q", ErrFormat, l1)
	}
	switch {
	case bytes.HasSuffix(l1, []byte(" NO")):
		return Reading{}, fmt.Errorf("%w: the kernel said NO (%q)", ErrCRC, l1)
	case !bytes.HasSuffix(l1, []byte(" YES")):
		return Reading{}, fmt.Errorf("%w: first line %q ends in neither YES nor NO", ErrFormat, l1)
	}
	if CRC8(sp[:8]) != sp[8] {
		return Reading{}, fmt.Errorf("%w: bytes % x: CRC %#02x, computed %#02x", ErrCRC, sp[:8], sp[8], CRC8(sp[:8]))
	}
	if sp == ([9]byte{}) {
		return Reading{}, fmt.Errorf("%w: scratchpad all zero (bus shorted to ground?)", ErrFormat)
	}
	i := bytes.Index(l2, []byte("t="))
	if i < 0 {
		return Reading{}, fmt.Errorf("%w: no t= in %q", ErrFormat, l2)
	}
	milli, err := strconv.Atoi(string(l2[i+2:]))
	if err != nil {
		return Reading{}, fmt.Errorf("%w: t= %q", ErrFormat, l2[i+2:])
	}
	r := Reading{Raw: int16(uint16(sp[0]) | uint16(sp[1])<<8)}
	r.Celsius = float64(r.Raw) / 16
	if r.Raw == 0x0550 {
		return r, ErrPowerOn
	}
	if want := int(r.Raw) * 1000 / 16; abs(milli-want) > 1 {
		return r, fmt.Errorf("%w: t=%d but the scratchpad says %d m°C", ErrRange, milli, want)
	}
	if r.Celsius < -55 || r.Celsius > 125 {
		return r, fmt.Errorf("%w: %.4f °C", ErrRange, r.Celsius)
	}
	return r, nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// scratchpad parses the nine hex bytes at the start of a line.
func scratchpad(l []byte) (sp [9]byte, ok bool) {
	f := bytes.Fields(l)
	if len(f) < 9 {
		return sp, false
	}
	for i := range 9 {
		v, err := strconv.ParseUint(string(f[i]), 16, 8)
		if err != nil || len(f[i]) != 2 {
			return sp, false
		}
		sp[i] = byte(v)
	}
	return sp, true
}

// CRC8 is the Dallas/Maxim 1-Wire CRC: polynomial x⁸+x⁵+x⁴+1, LSB first (0x8C
// reflected), initial 0.
func CRC8(b []byte) byte {
	var c byte
	for _, x := range b {
		for range 8 {
			mix := (c ^ x) & 1
			c >>= 1
			if mix != 0 {
				c ^= 0x8C
			}
			x >>= 1
		}
	}
	return c
}

// Probes lists the DS18B20 directories under root (normally /sys/bus/w1/devices).
func Probes(root string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(root, Family+"-*"))
	if err != nil {
		return nil, err
	}
	return m, nil
}
