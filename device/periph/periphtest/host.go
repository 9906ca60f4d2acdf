package periphtest

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
)

// Host hands out fake pins and buses by name, as device/periph's Host does on a
// board. A name it does not have is "not found"; pins and buses can be added while a
// source runs (a bus enabled late, a wire reconnected).
type Host struct {
	mu    sync.Mutex
	pins  map[string]gpio.PinIO
	buses map[string]*Bus
}

// NewHost returns a Host with no pins and no buses.
func NewHost() *Host { return &Host{pins: map[string]gpio.PinIO{}, buses: map[string]*Bus{}} }

// SetPin adds (or with nil removes) a pin.
func (h *Host) SetPin(name string, p gpio.PinIO) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p == nil {
		delete(h.pins, name)
		return
	}
	h.pins[name] = p
}

// SetBus adds (or with nil removes) a bus.
func (h *Host) SetBus(name string, b *Bus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b == nil {
		delete(h.buses, name)
		return
	}
	h.buses[name] = b
}

// Pin implements periph.Host.
func (h *Host) Pin(name string) (gpio.PinIO, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.pins[name]; p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("periphtest: GPIO pin %q not found", name)
}

// I2C implements periph.Host.
func (h *Host) I2C(bus string) (i2c.BusCloser, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.buses[bus]; b != nil {
		return b.Open(), nil
	}
	return nil, fmt.Errorf("periphtest: I2C bus %q not found", bus)
}
