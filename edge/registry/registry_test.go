package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/store/storetest"
)

// Credentials: added once (a second time is ErrExists), kept as a hash that checks
// the password, removed once (a second time is ErrNotFound); every change audited.
func TestAddRemove(t *testing.T) {
	st := storetest.Open(t, nil)
	cr, pw, err := Add(st, "fridge1", device.KindFridge)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Add(st, "fridge1", device.KindFridge); !errors.Is(err, ErrExists) {
		t.Fatalf("adding it again: %v, want ErrExists", err)
	}
	creds, _, err := Load(st)
	if err != nil || len(creds) != 1 || creds[0] != cr || strings.Contains(creds[0].Hash, pw) {
		t.Fatalf("loaded %+v, %v: want the one credential, hashed", creds, err)
	}
	table := broker.NewCredentials()
	table.Set(creds[0])
	if _, ok := table.Authenticate(cr.Device, []byte(pw)); !ok {
		t.Error("the stored hash does not check the password")
	}
	if _, _, err := Add(st, "..", device.KindFridge); err == nil {
		t.Error("an id that is not a device id was registered")
	}
	if _, _, err := Add(st, "oven1", "toastr"); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Errorf("an unknown kind: %v", err)
	}
	if err := Remove(st, "fridge1"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(st, "fridge1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing it again: %v, want ErrNotFound", err)
	}
}

// Accepting keeps the kind a device has and refuses a contradicting one with a
// typed error naming where the kind comes from; an accepted entity round-trips
// through the store as the proposal it was.
func TestAccepting(t *testing.T) {
	p := hadiscovery.Proposal{Mapping: devmqtt.Mapping{Source: devmqtt.SourceHomeAssistant, Name: "fridge_temp", Device: "fridge",
		Kind: device.KindSensor}, Signal: device.SignalTemperature, StateTopic: "esphome/fridge/temperature/state", UniqueID: "fridge_temp"}
	known := func(dev string) (device.Kind, string, bool) {
		if dev == "kitchen-fridge" {
			return device.KindFridge, "mqtt.mappings[0]", true
		}
		return "", "", false
	}
	got, err := Accepting(p, "fridge_temp", "kitchen-fridge", "", known)
	if err != nil || got.Mapping.Device != "kitchen-fridge" || got.Mapping.Kind != device.KindFridge {
		t.Fatalf("onto a known device: %+v, %v: want its kind, fridge", got.Mapping, err)
	}
	var kc *KindConflictError
	if _, err := Accepting(p, "fridge_temp", "kitchen-fridge", device.KindFreezer, known); !errors.As(err, &kc) ||
		kc.Have != device.KindFridge || kc.Want != device.KindFreezer || kc.From != "mqtt.mappings[0]" {
		t.Fatalf("a contradicting kind: %v, want a KindConflictError", err)
	}
	got, err = Accepting(p, "fridge_temp", "", device.KindFreezer, known)
	if err != nil || got.Mapping.Device != "fridge" || got.Mapping.Kind != device.KindFreezer {
		t.Fatalf("a new device with a kind: %+v, %v", got.Mapping, err)
	}
	st := storetest.Open(t, nil)
	if err := KeepAccepted(st, &got); err != nil {
		t.Fatal(err)
	}
	_, accepted, err := Load(st)
	if err != nil || len(accepted) != 1 || accepted[0].StateTopic != p.StateTopic || accepted[0].Mapping.Kind != device.KindFreezer {
		t.Fatalf("accepted read back: %+v, %v", accepted, err)
	}
	if _, err := Unaccept(st, "fridge_temp"); err != nil {
		t.Fatal(err)
	}
	if _, err := Unaccept(st, "fridge_temp"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unaccepting it again: %v", err)
	}
}
