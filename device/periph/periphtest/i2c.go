package periphtest

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// ErrNACK is what Linux's i2c-dev answers for an address nobody acknowledges
// (EREMOTEIO), wrapped as periph's sysfs bus wraps it.
var ErrNACK = fmt.Errorf("sysfs-i2c: %w", syscall.EREMOTEIO)

// ErrGone is what a bus that vanished (adapter unplugged, overlay removed) answers.
var ErrGone = fmt.Errorf("sysfs-i2c: %w", syscall.ENODEV)

// Device is an I²C device on a Bus: it answers transactions at its address.
type Device interface {
	Tx(w, r []byte) error
}

// Bus is an i2c.BusCloser with simulated devices at addresses; any other address
// NACKs. Gone makes every transaction fail as on a vanished bus.
type Bus struct {
	Name string

	mu      sync.Mutex
	devs    map[uint16]Device
	gone    bool
	txCount int
}

// NewBus returns a bus named name with devs at their addresses.
func NewBus(name string, devs map[uint16]Device) *Bus {
	return &Bus{Name: name, devs: devs}
}

// SetGone makes the bus fail every transaction (true) or work again (false).
func (b *Bus) SetGone(gone bool) {
	b.mu.Lock()
	b.gone = gone
	b.mu.Unlock()
}

// Txs returns the number of transactions attempted.
func (b *Bus) Txs() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.txCount
}

func (b *Bus) String() string { return b.Name }

// Tx implements i2c.Bus.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	b.txCount++
	d, gone := b.devs[addr], b.gone
	b.mu.Unlock()
	switch {
	case gone:
		return ErrGone
	case d == nil:
		return ErrNACK
	}
	return d.Tx(w, r)
}

// SetSpeed implements i2c.Bus.
func (b *Bus) SetSpeed(physic.Frequency) error { return nil }

// Close implements i2c.BusCloser; the bus stays usable through other handles.
func (b *Bus) Close() error { return nil }

// Open returns a new handle on the bus, as opening /dev/i2c-N again gives a new
// file: closing it does not close the bus for the others.
func (b *Bus) Open() i2c.BusCloser { return &handle{b: b} }

type handle struct {
	b      *Bus
	mu     sync.Mutex
	closed bool
}

func (h *handle) String() string { return h.b.String() }

func (h *handle) Tx(addr uint16, w, r []byte) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return errors.New("periphtest: handle closed")
	}
	return h.b.Tx(addr, w, r)
}

func (h *handle) SetSpeed(physic.Frequency) error { return nil }

func (h *handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("periphtest: closed twice")
	}
	h.closed = true
	return nil
}

var _ i2c.BusCloser = (*Bus)(nil)

// SHT3x simulates a Sensirion SHT3x: the status read, and single-shot measurements
// (command 0x2400, then a 6-byte read) that return the words Next gives, each with
// its CRC — or a bad CRC when Next says so.
type SHT3x struct {
	// Next returns the raw temperature and humidity words of the next measurement,
	// and whether to corrupt its temperature CRC.
	Next func() (t, rh uint16, badCRC bool)

	mu      sync.Mutex
	pending bool
}

// Tx implements Device.
func (s *SHT3x) Tx(w, r []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(w) == 2 && w[0] == 0xF3 && w[1] == 0x2D && len(r) == 0:
		return nil
	case len(w) == 0 && len(r) == 3 && !s.pending:
		st := []byte{0x80, 0x10}
		copy(r, append(st, crc31(st)))
		return nil
	case len(w) == 2 && w[0] == 0x24 && w[1] == 0x00 && len(r) == 0:
		s.pending = true
		return nil
	case len(w) == 0 && len(r) == 6 && s.pending:
		s.pending = false
		t, rh, bad := s.Next()
		tb := []byte{byte(t >> 8), byte(t)}
		hb := []byte{byte(rh >> 8), byte(rh)}
		c := crc31(tb)
		if bad {
			c ^= 0x5A
		}
		copy(r, []byte{tb[0], tb[1], c, hb[0], hb[1], crc31(hb)})
		return nil
	}
	return ErrNACK
}

// crc31 is the SHT3x checksum written bit by bit, independently of the driver's
// table.
func crc31(b []byte) byte {
	c := byte(0xFF)
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x31
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// CRC31 exposes the reference checksum to tests that build fixtures.
func CRC31(b []byte) byte { return crc31(b) }

// DeviceFunc is a Device written as a function.
type DeviceFunc func(w, r []byte) error

// Tx implements Device.
func (f DeviceFunc) Tx(w, r []byte) error { return f(w, r) }

// ChipID is a device that answers a read of register 0xD0 with id (a Bosch BMx280's
// chip id) and NACKs everything else.
func ChipID(id byte) Device {
	return DeviceFunc(func(w, r []byte) error {
		if len(w) == 1 && w[0] == 0xD0 && len(r) == 1 {
			r[0] = id
			return nil
		}
		return ErrNACK
	})
}
