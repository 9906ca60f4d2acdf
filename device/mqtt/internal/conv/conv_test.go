package conv

import (
	"math"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
)

func TestConversions(t *testing.T) {
	for _, tc := range []struct {
		sig        device.Signal
		v          Scalar
		text       bool
		want       float64
		errPart    string
		unit, outU string
	}{
		{sig: device.SignalDoor, v: Scalar{Type: 'b', Bool: true}, want: 1},
		{sig: device.SignalActive, v: Scalar{Type: 's', Str: "OFF"}, want: 0},
		{sig: device.SignalActive, v: Scalar{Type: 'n', Num: 2}, errPart: "want 0 or 1"},
		{sig: device.SignalActive, v: Scalar{Type: 's', Str: "TOGGLE"}, errPart: "not an on/off state"},
		{sig: device.SignalPower, v: Scalar{Type: 's', Str: "12"}, errPart: "where a number"},
		{sig: device.SignalPower, v: Scalar{Type: 's', Str: "12"}, text: true, want: 12, outU: "W"},
		{sig: device.SignalPower, v: Scalar{Type: 's', Str: "NaN"}, text: true, errPart: "where a number"},
		{sig: device.SignalPower, v: Scalar{Type: 'b'}, errPart: "boolean"},
		{sig: device.SignalPower, v: Scalar{Type: 'n', Num: 1.5}, unit: "kW", want: 1500, outU: "W"},
		{sig: device.SignalEnergy, v: Scalar{Type: 'n', Num: 1500}, unit: "Wh", want: 1.5, outU: "kWh"},
		{sig: device.SignalTemperature, v: Scalar{Type: 'n', Num: 212}, unit: "°F", want: 100, outU: "°C"},
		{sig: device.SignalTemperature, v: Scalar{Type: 'n', Num: 20}, unit: "%", errPart: `unit "%" does not fit`},
		{sig: device.SignalHumidity, v: Scalar{Type: 'n', Num: 40}, unit: "%", want: 40, outU: "%"},
		{sig: device.SignalWater, v: Scalar{Type: 'n', Num: 0.5}, unit: "L", want: 0.5, outU: "L"},
	} {
		f, err := ToValue(tc.sig, tc.v, tc.text)
		if err == nil {
			f, _, err = normalizeUnit(tc.sig, f, tc.unit)
		}
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%s %v: error %v, want %q", tc.sig, tc.v, err, tc.errPart)
			}
			continue
		}
		_, u, _ := normalizeUnit(tc.sig, 0, tc.unit)
		if err != nil || math.Abs(f-tc.want) > 1e-9 || (tc.outU != "" && u != tc.outU) {
			t.Errorf("%s %v %q = %v %q %v, want %v %q", tc.sig, tc.v, tc.unit, f, u, err, tc.want, tc.outU)
		}
	}
	for _, s := range []string{"1e400", "-1e400", "NaN", "Inf", "infinity", "0x10", "1_000", "", "-", "12 W"} {
		if _, err := StrictFloat(s); err == nil {
			t.Errorf("StrictFloat(%q) accepted", s)
		}
	}
	for _, s := range []string{"21.5", "-3", "1e3", "0.0"} {
		if _, err := StrictFloat(s); err != nil {
			t.Errorf("StrictFloat(%q): %v", s, err)
		}
	}
}

func TestCheckTopic(t *testing.T) {
	for _, tc := range []struct{ topic, part string }{
		{"zigbee2mqtt/#", "wildcards"},
		{"zigbee2mqtt/+/x", "wildcards"},
		{"a/b\x00", "NUL"},
		{strings.Repeat("a/", 16) + "a", "17 levels"},
		{strings.Repeat("a", 1025), "1025 bytes"},
		{"a/\xff", "UTF-8"},
	} {
		err := CheckTopic(tc.topic)
		if err == nil || !strings.Contains(err.Error(), tc.part) {
			t.Errorf("CheckTopic(%q) = %v, want %q", Truncate(tc.topic, 40), err, tc.part)
		}
	}
	if err := CheckTopic("zigbee2mqtt/kitchen/fridge door"); err != nil {
		t.Error(err)
	}
}
