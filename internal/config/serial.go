package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device/serial"
)

// SerialPort is one appliance on a UART speaking the firmware protocol
// (firmware-proto/SPEC.md), read by device/serial. Every key is documented under
// `serial:` in configs/hearth.yaml; a key left out of an entry takes the value of
// DefaultSerialPort.
type SerialPort struct {
	// Name labels the port in metrics and logs (default: path, or usb:VID:PID).
	Name string `yaml:"name"`
	// Path is the device node, e.g. /dev/serial/by-id/usb-FTDI_..-if00-port0. A symlink
	// (how udev names USB serial adapters) is resolved again at every (re)open.
	Path string `yaml:"path"`
	// USB selects the port by USB ids instead of Path.
	USB USBID `yaml:"usb"`

	Baud     int    `yaml:"baud"`
	DataBits int    `yaml:"data_bits"`
	Parity   string `yaml:"parity"`    // none | odd | even | mark | space
	StopBits string `yaml:"stop_bits"` // 1 | 1.5 | 2

	MaxFrame       int      `yaml:"max_frame"`        // largest decoded frame accepted, bytes
	ReadTimeout    Duration `yaml:"read_timeout"`     // how long one read waits before the reader looks up
	ReconnectMin   Duration `yaml:"reconnect_min"`    // first wait before reopening a vanished port
	ReconnectMax   Duration `yaml:"reconnect_max"`    // longest wait between reopen attempts
	MaxPending     int      `yaml:"max_pending"`      // batches awaiting the store before reading pauses
	NacksPerSecond int      `yaml:"nacks_per_second"` // Nack frames sent per second at most
	TimeSync       Duration `yaml:"time_sync"`        // TimeSync period; 0 sends none
}

// USBID picks a USB serial adapter through the operating system's enumerator.
type USBID struct {
	VID    string `yaml:"vid"`    // vendor id, 4 hex digits, e.g. "0403"
	PID    string `yaml:"pid"`    // product id, 4 hex digits, e.g. "6001"
	Serial string `yaml:"serial"` // USB serial number; empty: the first adapter with vid and pid
}

// Set reports whether a USB id was given.
func (u USBID) Set() bool { return u.VID != "" || u.PID != "" || u.Serial != "" }

// DefaultSerialPort returns the values a serial entry takes for the keys it leaves out:
// the protocol's 115200 8N1 line and its 512-byte maximum frame.
func DefaultSerialPort() SerialPort {
	d := serial.DefaultOptions() // the source's own
	return SerialPort{
		Baud: d.Baud, DataBits: d.DataBits, Parity: "none", StopBits: "1",
		MaxFrame: d.MaxFrame, ReadTimeout: Duration(d.ReadTimeout),
		ReconnectMin: Duration(d.ReconnectMin), ReconnectMax: Duration(d.ReconnectMax),
		MaxPending: d.MaxPending, NacksPerSecond: d.NacksPerSecond, TimeSync: Duration(d.TimeSync),
	}
}

// UnmarshalYAML decodes an entry over DefaultSerialPort, strictly (unknown keys are
// errors, as everywhere else in the file).
func (p *SerialPort) UnmarshalYAML(unmarshal func(any) error) error {
	type plain SerialPort
	v := plain(DefaultSerialPort())
	if err := unmarshal(&v); err != nil {
		return err
	}
	*p = SerialPort(v)
	return nil
}

// Label is the name the port goes by in metrics and logs.
func (p SerialPort) Label() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.Path != "":
		return p.Path
	}
	return "usb:" + strings.ToLower(p.USB.VID) + ":" + strings.ToLower(p.USB.PID)
}

var baudRates = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600, 1000000}

// validateSerial checks the serial section.
func (c *Config) validateSerial(bad func(key, format string, a ...any)) {
	seen := map[string]int{}
	for i, p := range c.Serial {
		k := func(field string) string { return fmt.Sprintf("serial[%d].%s", i, field) }
		switch {
		case p.Path == "" && !p.USB.Set():
			bad(k("path"), "give path or usb (vid and pid)")
		case p.Path != "" && p.USB.Set():
			bad(k("path"), "give path or usb, not both")
		case p.Path != "" && !filepath.IsAbs(p.Path):
			bad(k("path"), "%q is not an absolute path (e.g. /dev/ttyUSB0)", p.Path)
		case p.USB.Set():
			if !hex4(p.USB.VID) {
				bad(k("usb.vid"), "%q is not 4 hex digits (e.g. \"0403\")", p.USB.VID)
			}
			if !hex4(p.USB.PID) {
				bad(k("usb.pid"), "%q is not 4 hex digits (e.g. \"6001\")", p.USB.PID)
			}
		}
		if j, dup := seen[p.Label()]; dup {
			bad(k("name"), "%q is also serial[%d]: give each port its own name", p.Label(), j)
		}
		seen[p.Label()] = i
		okBaud := false
		for _, b := range baudRates {
			okBaud = okBaud || p.Baud == b
		}
		if !okBaud {
			bad(k("baud"), "%d is not a standard rate (%s)", p.Baud, strings.Trim(fmt.Sprint(baudRates), "[]"))
		}
		if p.DataBits < 5 || p.DataBits > 8 {
			bad(k("data_bits"), "%d is not 5, 6, 7 or 8", p.DataBits)
		}
		if _, ok := parities[p.Parity]; !ok {
			bad(k("parity"), "%q is not one of none, odd, even, mark, space", p.Parity)
		}
		if _, ok := stopBits[p.StopBits]; !ok {
			bad(k("stop_bits"), "%q is not one of 1, 1.5, 2", p.StopBits)
		}
		if p.MaxFrame < 64 || p.MaxFrame > 4096 {
			bad(k("max_frame"), "%d is not between 64 and 4096 (the protocol's frames are at most 512)", p.MaxFrame)
		}
		if p.ReadTimeout.D() < 10*time.Millisecond || p.ReadTimeout.D() > time.Minute {
			bad(k("read_timeout"), "%s is not between 10ms and 1m", p.ReadTimeout.D())
		}
		if p.ReconnectMin <= 0 {
			bad(k("reconnect_min"), "must be positive")
		}
		if p.ReconnectMax < p.ReconnectMin {
			bad(k("reconnect_max"), "%s is below reconnect_min (%s)", p.ReconnectMax.D(), p.ReconnectMin.D())
		}
		if p.MaxPending < 1 || p.MaxPending > 1024 {
			bad(k("max_pending"), "%d is not between 1 and 1024", p.MaxPending)
		}
		if p.NacksPerSecond < 1 || p.NacksPerSecond > 1000 {
			bad(k("nacks_per_second"), "%d is not between 1 and 1000", p.NacksPerSecond)
		}
		if p.TimeSync < 0 {
			bad(k("time_sync"), "must not be negative (0 sends no TimeSync)")
		}
	}
}

// Parities and stopBits map the config words to their meaning; device/serial keeps
// its own copy of the mapping to go.bug.st/serial's values.
var parities = map[string]struct{}{"none": {}, "odd": {}, "even": {}, "mark": {}, "space": {}}
var stopBits = map[string]struct{}{"1": {}, "1.5": {}, "2": {}}

func hex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
