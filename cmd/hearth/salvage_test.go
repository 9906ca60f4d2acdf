package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/registry"
)

// A damaged store at start costs no device its registration: the agent comes up
// with the store salvaged, the MQTT device registered before still authenticates
// with its password, and `hearth status` says what happened. (Both meta pages are
// zeroed: bbolt cannot open the file at all, and salvage takes the credentials and
// the install id from the keep file beside it.)
func TestDamagedStoreKeepsDevices(t *testing.T) {
	cfg := testConfig(t)
	a1, err := newAgent(cfg, testLogger(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, pw, err := registry.Add(a1.st, "washer1", device.KindWasher)
	if err != nil {
		t.Fatal(err)
	}
	installID := a1.st.InstallID()
	path := a1.st.Path()
	closeAgent(t, a1)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 2*os.Getpagesize()), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	a2, err := newAgent(cfg, testLogger(t), io.Discard)
	if err != nil {
		t.Fatalf("the agent did not start on a damaged store: %v", err)
	}
	defer closeAgent(t, a2)
	if _, ok := a2.creds.Authenticate("washer1", []byte(pw)); !ok {
		t.Error("the registered device is refused after the salvage")
	}
	if a2.st.InstallID() != installID {
		t.Errorf("install id %s after the salvage, was %s: every pseudonym upstream would change", a2.st.InstallID(), installID)
	}
	st := a2.status()
	if st.Quarantined == "" || st.Salvage == nil || filepath.Dir(st.Quarantined) != filepath.Dir(path) {
		t.Fatalf("status does not report the quarantine: %+v", st)
	}
	var out strings.Builder
	printDamage(&out, st)
	for _, want := range []string{"DAMAGED STORE", st.Quarantined, "credentials", "from the keep file: identity, credentials", "identity kept"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}
