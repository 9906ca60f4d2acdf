package ds18b20

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// Every fixture of testdata/README.md, read through Read as from sysfs.
func TestFixtures(t *testing.T) {
	for _, c := range []struct {
		dir  string
		want float64
		err  error
	}{
		{"28-0316a2797cff", 23.125, nil},
		{"28-0000000000a2", -10.125, nil},
		{"28-0000000000a3", -55, nil},
		{"28-0000000000b1", 0, ErrCRC},
		{"28-0000000000b2", 0, ErrCRC},
		{"28-0000000000b3", 0, ErrRange},
		{"28-0000000000b4", 0, ErrPowerOn},
		{"28-0000000000b5", 0, ErrFormat},
		{"28-0000000000b6", 0, ErrFormat},
		{"28-0000000000ff", 0, fs.ErrNotExist},
	} {
		r, err := Read(filepath.Join("testdata", c.dir))
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%s: %v, want %v", c.dir, err, c.err)
		case c.err == nil && (err != nil || r.Celsius != c.want):
			t.Errorf("%s: %v °C, %v; want %v °C", c.dir, r.Celsius, err, c.want)
		}
	}
}

// The Dallas CRC of the nine scratchpad bytes, CRC included, is zero: checked over
// the two real probes' outputs.
func TestCRC8Residue(t *testing.T) {
	for _, sp := range [][]byte{
		{0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10, 0x57},
		{0x50, 0x05, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10, 0x1c},
	} {
		if CRC8(sp) != 0 {
			t.Errorf("CRC8(% x) = %#02x, want 0", sp, CRC8(sp))
		}
	}
}

func TestProbes(t *testing.T) {
	p, err := Probes("testdata")
	if err != nil || len(p) != 9 {
		t.Errorf("Probes = %d (%v), want the 9 fixture directories", len(p), err)
	}
}
