package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	code, out, _ := runCLI(t, "config", "check", "../../configs/hearth.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("config check of the shipped file: exit %d, %q", code, out)
	}
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "data_dir: ./x\nbroker:\n  listen: 127.0.0.1:1883\n  max_clientz: 3\nstore:\n  quota_bytes: -1\n")
	code, _, errs := runCLI(t, "config", "check", bad)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{`bad.yaml:4: broker.max_clientz: unknown key "max_clientz"`} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	// Every error is listed, not just the first: validation errors too.
	bad2 := writeFile(t, dir, "bad2.yaml", "store:\n  quota_bytes: -1\ntimezone: Nowhere/Atlantis\n")
	code, _, errs = runCLI(t, "config", "check", bad2)
	if code != 1 || !strings.Contains(errs, "bad2.yaml:2: store.quota_bytes") || !strings.Contains(errs, "bad2.yaml:3: timezone") ||
		!strings.Contains(errs, "2 error(s)") {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}
}

// Each bad start is one clear error line naming what and where, exit 1, and leaves
// no data directory behind.
func TestRunRefusesBadStarts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	notDir := writeFile(t, dir, "plainfile", "x")
	cases := []struct {
		name, config, want string
	}{
		{"missing config", "", "no-such.yaml: no such file or directory"},
		{"unknown key", "sim:\n  speeed: 5\n", `sim.speeed: unknown key "speeed"`},
		{"port in use", "broker:\n  listen: " + busy.Addr().String() + "\nadmin:\n  listen: 127.0.0.1:0\n",
			"broker.listen: " + busy.Addr().String() + " is already in use"},
		{"data dir not writable", "data_dir: " + filepath.Join(notDir, "data") + "\nbroker:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
			"data_dir: cannot create " + filepath.Join(notDir, "data")},
		{"bad rules file", "tagging:\n  rules_file: " + filepath.Join(dir, "none.yaml") + "\nbroker:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
			"tagging.rules_file: open " + filepath.Join(dir, "none.yaml")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfgPath := filepath.Join(dir, "no-such.yaml")
			dataDir := filepath.Join(t.TempDir(), "data")
			if c.config != "" {
				body := c.config
				if !strings.Contains(body, "data_dir") {
					body = "data_dir: " + dataDir + "\n" + body
				}
				cfgPath = writeFile(t, t.TempDir(), "hearth.yaml", body)
			}
			code, _, errs := runCLI(t, "run", "--config", cfgPath)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if lines := strings.Count(strings.TrimSpace(errs), "\n") + 1; lines != 1 || !strings.Contains(errs, c.want) {
				t.Errorf("want one line containing %q, got %d line(s):\n%s", c.want, lines, errs)
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("data directory %s was left behind", dataDir)
			}
		})
	}
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "hearth ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "status", "--addr", "127.0.0.1:1"); code != 1 || !strings.Contains(errs, "cannot reach hearth at 127.0.0.1:1") {
		t.Errorf("status without an agent: %d %q", code, errs)
	}
	// --config: the agent's admin.listen, as `hearth device` takes it.
	cfg := filepath.Join(t.TempDir(), "hearth.yaml")
	if err := os.WriteFile(cfg, []byte("admin:\n  listen: 127.0.0.1:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"status", "tags"} {
		if code, _, errs := runCLI(t, cmd, "--config", cfg); code != 1 || !strings.Contains(errs, "cannot reach hearth at 127.0.0.1:2") {
			t.Errorf("%s --config (admin.listen 127.0.0.1:2) without an agent: %d %q", cmd, code, errs)
		}
	}
	if code, _, errs := runCLI(t, "tags", "--config", cfg+".missing"); code != 1 || !strings.Contains(errs, cfg+".missing") {
		t.Errorf("tags with a missing --config: %d %q", code, errs)
	}
}

// A second run continues the simulated household where the store's data ends, under a
// new boot id: its readings are neither older than what was rolled up nor taken for
// retransmissions of the first run's.
func TestSimResumesAfterStoredData(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sim.Enabled = true
	a1, err := newAgent(cfg, testLogger(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now().Add(-10 * 24 * time.Hour).UTC()
	if err := device.Commit(context.Background(), a1.st, []device.Reading{{Device: "sim-fridge", Kind: device.KindFridge,
		Signal: device.SignalDoor, Value: 1, Boot: a1.hh.Boot(), Seq: 1, DeviceTime: last, HubTime: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.roll.CatchUp(); err != nil {
		t.Fatal(err)
	}
	boot1 := a1.hh.Boot()
	closeAgent(t, a1)
	a2, err := newAgent(cfg, testLogger(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAgent(t, a2)
	want := time.Date(last.Year(), last.Month(), last.Day()+1, 0, 0, 0, 0, time.UTC)
	if !a2.hh.Now().Equal(want) {
		t.Errorf("second run starts at %s, want %s (the midnight after the stored data)", a2.hh.Now(), want)
	}
	if a2.hh.Boot() == boot1 {
		t.Error("second run reuses the first run's boot id: its readings would count as duplicates")
	}
}

// closeAgent releases what newAgent took without running it.
func closeAgent(t *testing.T, a *agent) {
	t.Helper()
	a.adminLn.Close()
	for _, ln := range a.brokerListeners() {
		ln.Close()
	}
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
}

// hearth tags shows each tag's confidence beside its score, and --explain says it.
func TestTagsShowConfidence(t *testing.T) {
	tags := []tagging.Tag{{Name: "routine.breakfast_at_home", Score: 0.71, Confidence: 0.6, Status: tagging.StatusOK, Days: 25, MinDays: 7,
		Evidence: map[string]float64{"mode.fridge": 1, "used.fridge": 17}}}
	var b bytes.Buffer
	printTags(&b, tags)
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "SCORE  CONFIDENCE") || !strings.Contains(lines[1], "0.71   0.60") || !strings.Contains(lines[1], "used.fridge=17") {
		t.Errorf("hearth tags:\n%s", b.String())
	}
	b.Reset()
	explainTag(&b, tags[0])
	if !strings.Contains(b.String(), "score 0.710 (confidence 0.60)") {
		t.Errorf("hearth tags --explain:\n%s", b.String())
	}
}

// What a user reads when a command fails is the message, not the API's raw JSON;
// an unknown kind lists the known ones; status keys have no NUL bytes.
func TestCLIErrorsReadable(t *testing.T) {
	cfg := testConfig(t)
	a, _ := startAgent(t, cfg)
	addr := a.adminLn.Addr().String()
	out, err := hearthCLI(t, "tags", "--addr", addr, "--explain", "habit.nope")
	if err == nil || !strings.Contains(out, "no tag named habit.nope") || strings.Contains(out, "{") {
		t.Errorf("tags --explain of an unknown tag: %v\n%s", err, out)
	}
	out, err = hearthCLI(t, "device", "add", "x1", "--kind", "toastr", "--addr", addr, "--config", cliConfig(t, cfg))
	if err == nil || !strings.Contains(out, `unknown kind "toastr" (known: fridge, freezer`) {
		t.Errorf("device add --kind toastr: %v\n%s", err, out)
	}
	// A summary cursor has a name of two parts: shown joined by "/".
	if err := a.st.Update(func(tx *store.Tx) error { return tx.SetCursor("sync.days\x00f1", 20260101) }); err != nil {
		t.Fatal(err)
	}
	body := getText(t, "http://"+addr+"/v1/status")
	if strings.Contains(body, `\u0000`) || !strings.Contains(body, `"sync.days/f1"`) {
		t.Errorf("/v1/status cursors: %s", body)
	}
}
