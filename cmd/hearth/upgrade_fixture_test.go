//go:build fixture

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hearth-iot/hearth/edge/store"
)

// TestMakeUpgradeFixture writes testdata/upgrade/schema<N>.db, a store as this code
// leaves it, for the upgrade tests of later releases. It never rewrites a fixture: an
// old release's file must stay what that release wrote.
//
//	go test -tags fixture -run TestMakeUpgradeFixture ./cmd/hearth
func TestMakeUpgradeFixture(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "upgrade")
	db := filepath.Join(dir, fmt.Sprintf("schema%d.db", store.SchemaVersion))
	if _, err := os.Stat(db); err == nil {
		t.Fatalf("%s exists: fixtures are never rewritten", db)
	}
	cfg := testConfig(t)
	a, stop := startAgent(t, cfg)
	admin := a.adminLn.Addr().String()
	out, err := hearthCLI(t, "device", "add", "up-fridge", "--kind", "fridge", "--addr", admin, "--config", cliConfig(t, cfg))
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pw := pwLine.FindStringSubmatch(out)[1]
	const n = 24
	for i := range n {
		if out, err := mosquittoPub(t, a.brokerLn.Addr().String(), "-u", "up-fridge", "-P", pw, "-q", "1",
			"-t", "hearth/v1/up-fridge/readings", "-m", fmt.Sprintf(`{"signal":"door","value":%d,"boot":3,"seq":%d}`, (i+1)%2, i+1)); err != nil {
			t.Fatalf("mosquitto_pub: %v: %s", err, out)
		}
	}
	stop()
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, cfg.Store.File))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, b, 0o644); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.MarshalIndent(upgradeFixture{Device: "up-fridge", Kind: "fridge", Password: pw, Readings: n, Boot: 3, Seq: n,
		InstallID: a.st.InstallID()}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("schema%d.json", store.SchemaVersion)), append(meta, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
