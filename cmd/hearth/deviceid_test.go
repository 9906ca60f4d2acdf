package main

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
)

// A store written before device ids had to start with a letter or digit may hold ".",
// ".." or "-x": the agent still starts (an acceptance naming such an id is not loaded,
// each is logged), `hearth device remove` removes them through the running agent (the
// CLI escapes the id in the URL path), and no new one can be registered.
func TestLegacyDeviceIDs(t *testing.T) {
	cfg := testConfig(t)
	legacy := []string{".", "..", "-x", "ok-device"}
	path := filepath.Join(cfg.DataDir, cfg.Store.File)
	st, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	hash, err := broker.Hash([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	accepted := hadiscovery.Proposal{Mapping: devmqtt.Mapping{Source: devmqtt.SourceHomeAssistant, Name: "fridge_temp", Device: "..",
		Kind: device.KindFridge}, Property: "temperature", Signal: device.SignalTemperature, Component: "sensor",
		StateTopic: "esphome/fridge/temperature/state", UniqueID: "fridge_temp"}
	// Records an older hearth could write, which today's typed views refuse to.
	for _, id := range legacy {
		b, _ := json.Marshal(broker.Credential{Device: id, Kind: device.KindFridge, Hash: hash})
		storetest.PutRaw(t, path, "credentials", []byte("device/"+id), b)
	}
	b, _ := json.Marshal(accepted)
	storetest.PutRaw(t, path, "credentials", []byte("accepted/"+accepted.Mapping.Name), b)
	var logs lockedBuffer
	a, _ := startAgentLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, ok := a.mq.accepted["fridge_temp"]; ok {
		t.Error("the acceptance of device \"..\" was loaded")
	}
	for _, want := range []string{`msg="registered device id is not valid`, `device=..`, `device=-x`,
		`msg="accepted proposal maps to a device id that is not valid`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	addr, conf := a.adminLn.Addr().String(), cliConfig(t, cfg)
	for _, id := range legacy[:3] {
		if out, err := hearthCLI(t, "device", "remove", "--addr", addr, "--config", conf, "--", id); err != nil {
			t.Errorf("remove %q: %v: %s", id, err, out)
		}
		if out, err := hearthCLI(t, "device", "add", "--kind", "fridge", "--addr", addr, "--config", conf, "--", id); err == nil ||
			!strings.Contains(out, "starts with") {
			t.Errorf("add %q: %v, %s: want it refused", id, err, out)
		}
	}
	list, err := hearthCLI(t, "device", "list", "--json", "--addr", addr, "--config", conf)
	if err != nil {
		t.Fatal(err)
	}
	var got []RegisteredDevice
	if err := json.Unmarshal([]byte(list), &got); err != nil {
		t.Fatal(err)
	}
	var creds []string
	for _, d := range got {
		if d.Via == "credentials" {
			creds = append(creds, d.Device)
		}
	}
	if len(creds) != 1 || creds[0] != "ok-device" {
		t.Errorf("credentials after the removals: %q, want only ok-device", creds)
	}
}
