package periph

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"
	"periph.io/x/host/v3/sysfs"
)

// Host hands out the pins and buses sensors are wired to. Pin and I2C may be called
// from several goroutines; a bus is opened once per sensor and closed by it.
type Host interface {
	// Pin returns the GPIO pin of that name (as periph names it: GPIO17, or the
	// number), or an error wrapping ErrMissing.
	Pin(name string) (gpio.PinIO, error)
	// I2C opens the bus ("1" or "/dev/i2c-1"), or returns an error wrapping
	// ErrMissing when it does not exist.
	I2C(bus string) (i2c.BusCloser, error)
}

// ErrMissing is wrapped by a Host's errors for a pin or bus that is not there (not
// enabled, not permitted, not on this board).
var ErrMissing = errors.New("not found")

// PeriphHost is the Host of a real board, through periph.io/x/host: GPIO lines by
// the kernel's character device (gpioioctl) or the board's registers (bcm283x), I²C
// through /dev/i2c-N. host.Init runs once, at the first Pin or I2C call.
type PeriphHost struct {
	once  sync.Once
	state *driverreg.State
	err   error
}

// NewHost returns the board's Host; nothing is touched until it is first used.
func NewHost() *PeriphHost { return &PeriphHost{} }

// Init runs periph's host.Init once and returns its outcome: which drivers loaded
// and which failed (a failed driver is no error: another may serve the pins).
func (h *PeriphHost) Init() (*driverreg.State, error) {
	h.once.Do(func() {
		h.state, h.err = host.Init()
		if h.err != nil {
			h.err = fmt.Errorf("periph host.Init: %w", h.err)
		}
	})
	return h.state, h.err
}

// Pin implements Host.
func (h *PeriphHost) Pin(name string) (gpio.PinIO, error) {
	st, err := h.Init()
	if err != nil {
		return nil, err
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	hint := ""
	if _, err := os.Stat("/dev/gpiochip0"); err == nil {
		if f, err := os.Open("/dev/gpiochip0"); err != nil {
			hint = fmt.Sprintf("; /dev/gpiochip0: %v (see docs/hub-sensors.md, Permissions)", err)
		} else {
			f.Close()
		}
	} else {
		hint = "; no /dev/gpiochip0 on this machine"
	}
	return nil, fmt.Errorf("GPIO pin %q: %w among %d pins%s%s", name, ErrMissing, len(gpioreg.All()), hint, failed(st))
}

func failed(st *driverreg.State) string {
	if st == nil || len(st.Failed) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("; periph drivers that failed:")
	for _, f := range st.Failed {
		fmt.Fprintf(&b, " %s (%v)", f.D, f.Err)
	}
	return b.String()
}

// I2C implements Host. It opens /dev/i2c-N directly, each time it is called, so a
// bus that appears after hearth started (an overlay loaded late, a USB adapter
// plugged in) is found when the sensor is retried.
func (h *PeriphHost) I2C(bus string) (i2c.BusCloser, error) {
	n, err := BusNumber(bus)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(fmt.Sprintf("/dev/i2c-%d", n)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("I2C bus /dev/i2c-%d: %w (enable it: dtparam=i2c_arm=on, or modprobe i2c-dev)", n, ErrMissing)
	}
	b, err := sysfs.NewI2C(n)
	if err != nil {
		return nil, fmt.Errorf("I2C bus /dev/i2c-%d: %w", n, err)
	}
	return b, nil
}

// GPIOChips lists the GPIO chips periph's character-device driver opened.
func (h *PeriphHost) GPIOChips() ([]GPIOChip, error) {
	if _, err := h.Init(); err != nil {
		return nil, err
	}
	var out []GPIOChip
	for _, c := range gpioioctl.Chips {
		out = append(out, GPIOChip{Path: c.Path(), Label: c.Label(), Lines: c.LineCount()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no GPIO chip could be opened (none under /dev/gpiochip*, or no permission: see docs/hub-sensors.md)")
	}
	return out, nil
}

// BusNumber parses an I²C bus as the config gives it: "1" or "/dev/i2c-1".
func BusNumber(bus string) (int, error) {
	s := strings.TrimPrefix(bus, "/dev/i2c-")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("I2C bus %q: not a bus number or /dev/i2c-N", bus)
	}
	return n, nil
}
