package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/edge/store"
)

// upgradeFixture describes testdata/upgrade/schema<N>.db: what the release that wrote
// it stored (upgrade_fixture_test.go makes them).
type upgradeFixture struct {
	Device    string `json:"device"`
	Kind      string `json:"kind"`
	Password  string `json:"password"` // a test credential, made for the fixture
	Readings  int    `json:"readings"`
	Boot      uint64 `json:"boot"`
	Seq       uint64 `json:"seq"`
	InstallID string `json:"install_id"`
}

// startOnStore starts the agent on a copy of an old release's store file.
func startOnStore(t *testing.T, file string) (*agent, func()) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, cfg.Store.File), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return startAgent(t, cfg)
}

// TestUpgradeKeepsData: this hearth starts on the store of each earlier release kept
// in testdata/upgrade and finds everything that release stored: the install id (so
// pseudonyms upstream stay the same), the devices and their readings, the device's
// credential (it still connects with its password) and the sequence that dedupes its
// retransmissions.
func TestUpgradeKeepsData(t *testing.T) {
	fixtures, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "upgrade", "schema*.db"))
	if len(fixtures) == 0 {
		t.Fatal("no testdata/upgrade/schema*.db: the upgrade path is untested")
	}
	for _, db := range fixtures {
		t.Run(filepath.Base(db), func(t *testing.T) {
			var fx upgradeFixture
			b, err := os.ReadFile(strings.TrimSuffix(db, ".db") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &fx); err != nil {
				t.Fatal(err)
			}
			a, stop := startOnStore(t, db)
			if a.st.Recovered != "" {
				t.Fatalf("the old store was taken for corrupt and moved to %s", a.st.Recovered)
			}
			if a.st.InstallID() != fx.InstallID {
				t.Fatalf("install id %s, the old store had %s", a.st.InstallID(), fx.InstallID)
			}
			admin := "http://" + a.adminLn.Addr().String()
			device := func() store.DeviceInfo {
				var devs []store.DeviceInfo
				getJSON(t, admin+"/v1/devices", &devs)
				for _, d := range devs {
					if d.ID == fx.Device {
						return d
					}
				}
				t.Fatalf("%s missing after the upgrade: %+v", fx.Device, devs)
				return store.DeviceInfo{}
			}
			if d := device(); d.Readings != uint64(fx.Readings) || string(d.Kind) != fx.Kind {
				t.Fatalf("%s after the upgrade: %+v, the old store had %d readings of a %s", fx.Device, d, fx.Readings, fx.Kind)
			}
			if fx.Password == "" {
				stop() // a layout from before device credentials were stored
				return
			}
			// A retransmission of the last reading is recognised; the next one is stored;
			// the credential still lets the device in.
			for _, seq := range []uint64{fx.Seq, fx.Seq + 1} {
				if out, err := mosquittoPub(t, a.brokerLn.Addr().String(), "-u", fx.Device, "-P", fx.Password, "-q", "1",
					"-t", "hearth/v1/"+fx.Device+"/readings", "-m", fmt.Sprintf(`{"signal":"door","value":1,"boot":%d,"seq":%d}`, fx.Boot, seq)); err != nil {
					t.Fatalf("mosquitto_pub with the old credential: %v: %s", err, out)
				}
			}
			if d := device(); d.Readings != uint64(fx.Readings)+1 || d.Dups == 0 {
				t.Fatalf("after a retransmission and a new reading: %+v, want %d readings and a duplicate", d, fx.Readings+1)
			}
			stop()
		})
	}
}
