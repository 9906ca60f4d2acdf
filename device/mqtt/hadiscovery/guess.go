package hadiscovery

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

// guessSignal picks the hearth signal of an entity, or "" when it has none.
func guessSignal(p *Proposal) (device.Signal, string) {
	class := strings.ToLower(p.DeviceClass)
	names := strings.ToLower(p.EntityName + " " + p.ObjectID + " " + p.Property)
	switch p.Component {
	case "switch":
		return device.SignalActive, "switch state → active"
	case "binary_sensor":
		switch class {
		case "door", "opening", "window", "garage_door":
			return device.SignalDoor, "device_class " + class + " → door"
		case "motion", "occupancy", "presence", "moving":
			return device.SignalActive, "device_class " + class + " → active"
		case "power", "plug", "running":
			return device.SignalActive, "device_class " + class + " → active"
		case "":
			switch {
			case p.Property == "contact" || strings.Contains(names, "door"):
				return device.SignalDoor, "contact/door binary_sensor → door"
			}
			return device.SignalActive, "binary_sensor → active"
		}
		return "", ""
	case "sensor":
		switch class {
		case "temperature", "humidity", "power", "energy", "battery":
			return device.Signal(class), "device_class " + class + " → " + class
		case "":
		default:
			return "", ""
		}
		switch strings.TrimSpace(p.Unit) {
		case "W", "kW":
			return device.SignalPower, "unit " + p.Unit + " → power"
		case "kWh", "Wh":
			return device.SignalEnergy, "unit " + p.Unit + " → energy"
		case "°C", "°F", "ºC", "ºF":
			return device.SignalTemperature, "unit " + p.Unit + " → temperature"
		case "%":
			switch {
			case strings.Contains(names, "humid"):
				return device.SignalHumidity, "unit % and a humidity name → humidity"
			case strings.Contains(names, "batt"):
				return device.SignalBattery, "unit % and a battery name → battery"
			}
		}
	}
	return "", ""
}

// kindWords are matched, in order, at the start of a word of the entity, device and
// model names; the first match names the kind.
var kindWords = []struct {
	word string
	kind device.Kind
}{
	{"dishwasher", device.KindDishwasher}, {"dish washer", device.KindDishwasher}, {"洗碗机", device.KindDishwasher},
	{"fridge", device.KindFridge}, {"refrigerator", device.KindFridge}, {"kühlschrank", device.KindFridge}, {"冰箱", device.KindFridge},
	{"freezer", device.KindFreezer}, {"冷柜", device.KindFreezer},
	{"microwave", device.KindMicrowave}, {"微波炉", device.KindMicrowave},
	{"oven", device.KindOven}, {"烤箱", device.KindOven},
	{"stove", device.KindStove}, {"cooktop", device.KindStove}, {"hob", device.KindStove},
	{"toaster", device.KindToaster}, {"kettle", device.KindKettle},
	{"washing machine", device.KindWasher}, {"washer", device.KindWasher}, {"洗衣机", device.KindWasher},
	{"dryer", device.KindDryer}, {"tumble", device.KindDryer},
	{"cabinet", device.KindKitchenCabinet}, {"cupboard", device.KindKitchenCabinet}, {"pantry", device.KindKitchenCabinet}, {"drawer", device.KindKitchenCabinet},
	{"front door", device.KindEntryDoor}, {"entry", device.KindEntryDoor}, {"entrance", device.KindEntryDoor}, {"main door", device.KindEntryDoor}, {"back door", device.KindEntryDoor},
	{"motion", device.KindMotion}, {"pir", device.KindMotion}, {"occupancy", device.KindMotion},
	{"plug", device.KindPlug}, {"socket", device.KindPlug}, {"outlet", device.KindPlug},
}

func guessKind(p *Proposal, sig device.Signal) (device.Kind, string) {
	texts := []struct{ what, s string }{{"name", p.EntityName}, {"device name", p.DeviceName},
		{"object_id", p.ObjectID}, {"node_id", p.NodeID}, {"model", p.Model}}
	for _, w := range kindWords {
		for _, t := range texts {
			if hasWord(normalizeWords(t.s), w.word) {
				return w.kind, fmt.Sprintf("%s %q names %q → %s", t.what, conv.Truncate(t.s, 64), w.word, w.kind)
			}
		}
	}
	switch {
	case sig == device.SignalActive && (p.Component == "switch" || p.DeviceClass == "power" || p.DeviceClass == "plug"):
		return device.KindPlug, "no appliance named; a switch → plug"
	case sig == device.SignalActive && p.Component == "binary_sensor":
		return device.KindMotion, "no appliance named; an activity sensor → motion"
	case sig == device.SignalPower || sig == device.SignalEnergy:
		return device.KindPlug, "no appliance named; a power meter → plug"
	}
	return device.KindSensor, "no appliance named → sensor"
}

// normalizeWords lower-cases s and turns separators into single spaces.
func normalizeWords(s string) string {
	var b strings.Builder
	space := true
	for _, r := range strings.ToLower(s) {
		if r == '_' || r == '-' || r == '.' || r == '/' || r == ' ' || r == '(' || r == ')' || r == '&' || r == ',' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return b.String()
}

// hasWord reports whether w starts a word of s (or appears anywhere, for words
// outside ASCII, whose scripts do not separate words).
func hasWord(s, w string) bool {
	if w[0] >= utf8.RuneSelf {
		return strings.Contains(s, w)
	}
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		if i+j == 0 || s[i+j-1] == ' ' {
			return true
		}
		i += j + 1
	}
}

// suggestID derives a device id from the first usable name.
func suggestID(names ...string) string {
	for _, n := range names {
		var b strings.Builder
		under := false
		for _, r := range strings.ToLower(n) {
			switch {
			case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
				under = false
			case !under && b.Len() > 0:
				b.WriteByte('_')
				under = true
			}
		}
		id := strings.TrimRight(b.String(), "_")
		if len(id) > device.MaxIDLen {
			id = strings.TrimRight(id[:device.MaxIDLen], "_")
		}
		if id != "" {
			return id
		}
	}
	return "ha_device"
}
