package config

import (
	"testing"
	"time"
)

// A serial entry takes DefaultSerialPort for every key it leaves out.
func TestSerialDefaultsPerEntry(t *testing.T) {
	cfg, err := Load("../../testdata/config/serial.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Serial) != 2 {
		t.Fatalf("got %d ports, want 2", len(cfg.Serial))
	}
	want := DefaultSerialPort()
	want.Name = "fridge"
	want.Path = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
	if cfg.Serial[0] != want {
		t.Errorf("port 0 = %+v\nwant %+v", cfg.Serial[0], want)
	}
	p := cfg.Serial[1]
	if p.Baud != 9600 || p.Parity != "even" || p.StopBits != "2" || p.MaxPending != 4 ||
		p.DataBits != 8 || p.ReadTimeout.D() != time.Second || p.USB.VID != "0403" {
		t.Errorf("port 1 = %+v", p)
	}
	if p.Label() != "usb:0403:6001" {
		t.Errorf("label = %q", p.Label())
	}
}
