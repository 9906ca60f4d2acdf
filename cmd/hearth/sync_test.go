package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/sync/cdptest"
)

// syncConfig is testConfig with the simulated household replaying days quickly and
// sync to a Segment-spec endpoint, with short retries.
func syncConfig(t *testing.T, endpoint, keyFile string) config.Config {
	cfg := testConfig(t)
	cfg.Sim.Enabled = true
	cfg.Sim.History = config.Duration(3 * 24 * time.Hour)
	cfg.Sim.Speed = 200000
	cfg.Sync.Transport = "segment"
	cfg.Sync.Segment.Endpoint = endpoint
	cfg.Sync.Segment.WriteKeyFile = keyFile
	cfg.Sync.BatchCount = 5
	cfg.Sync.Retry.Initial = config.Duration(10 * time.Millisecond)
	cfg.Sync.Retry.Max = config.Duration(100 * time.Millisecond)
	cfg.Sync.Retry.AuthRetry = config.Duration(100 * time.Millisecond)
	return cfg
}

// A wrong write key: delivery pauses and says so in /readyz (ready, degraded), in
// `hearth status` and in /metrics; readings are still taken and nothing is lost.
// The key fixed (write_key_file is read at each attempt): delivery resumes.
func TestSyncWrongKeyPausesThenResumes(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "right-key"})
	url := rcv.Start(t)
	keyFile := writeFile(t, t.TempDir(), "write.key", "wrong-key\n")
	a, _ := startAgent(t, syncConfig(t, url, keyFile))
	admin := "http://" + a.adminLn.Addr().String()
	waitFor(t, "delivery to pause", 30*time.Second, func() bool {
		return strings.Contains(getText(t, admin+"/readyz"), "degraded")
	})
	if body := getText(t, admin+"/readyz"); !strings.HasPrefix(body, "ready (degraded: upstream delivery paused: auth (HTTP 401)") {
		t.Errorf("/readyz: %q", body)
	}
	out, err := hearthCLI(t, "status", "--addr", a.adminLn.Addr().String())
	if err != nil || !strings.Contains(out, "DELIVERY PAUSED: auth (HTTP 401)") || !strings.Contains(out, "sync (segment)") {
		t.Errorf("hearth status (%v):\n%s", err, out)
	}
	if m := getText(t, admin+"/metrics"); !strings.Contains(m, "hearth_sync_paused 1") {
		t.Error("/metrics lacks hearth_sync_paused 1")
	}
	var st Status
	getJSON(t, admin+"/v1/status", &st)
	kept := st.Sync.QueuedMessages + st.Sync.PendingMessages
	if c := rcv.Counts(); c.Unique != 0 || c.Rejected == 0 || kept == 0 {
		t.Fatalf("while paused: receiver %+v, %d messages kept", c, kept)
	}
	if err := os.WriteFile(keyFile, []byte("right-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery to resume", 30*time.Second, func() bool {
		return getText(t, admin+"/readyz") == "ready\n" && rcv.Counts().Unique >= kept
	})
	if out, _ := hearthCLI(t, "status", "--addr", a.adminLn.Addr().String()); strings.Contains(out, "PAUSED") || strings.Contains(out, "last delivery never") {
		t.Errorf("hearth status after the fix:\n%s", out)
	}
	for _, e := range rcv.Events() {
		if strings.Contains(fmt.Sprint(e.Properties), "sim-") {
			t.Fatalf("a local device id left the home: %+v", e)
		}
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The agent killed with SIGKILL in the middle of sends, three times, and restarted:
// everything arrives; the receiver sees at most one batch again per kill, none after
// de-duplication.
func TestSyncKill9MidSend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the agent five times")
	}
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	px, err := cdptest.NewProxy(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "write.key", "k\n")
	adminAddr := freePort(t)
	conf := func(sim bool) string {
		return writeFile(t, dir, "hearth.yaml", fmt.Sprintf(`data_dir: %s
timezone: UTC
broker: {listen: "127.0.0.1:0"}
admin: {listen: "%s"}
report: {interval: 0s}
rollup: {interval: 20ms}
tagging: {interval: 50ms}
sim: {enabled: %v, history: 3d, speed: 200000}
sync:
  interval: 50ms
  batch_age: 100ms
  batch_count: 5
  transport: segment
  segment: {endpoint: "http://%s", write_key_file: %s}
  retry: {initial: 10ms, max: 100ms}
`, filepath.Join(dir, "data"), adminAddr, sim, px.Addr(), keyFile))
	}
	var logs bytes.Buffer
	start := func(cfg string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCLIHelperProcess$", "--", "run", "--config", cfg)
		cmd.Env = append(os.Environ(), "HEARTH_TEST_CLI_HELPER=1")
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitFor(t, "the agent's admin API", 30*time.Second, func() bool {
			c, err := net.Dial("tcp", adminAddr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	status := func() (Status, error) {
		var s Status
		_, err := get(t.Context(), adminAddr, "/v1/status", &s)
		return s, err
	}
	defer func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs.String())
		}
	}()

	// 1. The household's days are summarised while the receiver is down.
	rcv.SetDown(true)
	cmd := start(conf(true))
	waitFor(t, "summaries waiting in the outbox", 60*time.Second, func() bool {
		s, err := status()
		return err == nil && s.Sync.QueuedMessages+s.Sync.PendingMessages >= 20
	})
	kill(cmd)
	// 2. Three times: the receiver takes a batch, and the agent dies before the
	// answer reaches it (the proxy holds answers 2 s: the kill comes well inside that, even on a loaded machine).
	rcv.SetDown(false)
	px.SetLatency(2 * time.Second)
	cfg := conf(false)
	for i := range 3 {
		before := rcv.Counts().Accepted
		cmd := start(cfg)
		waitFor(t, fmt.Sprintf("a batch at the receiver (kill %d)", i+1), 30*time.Second, func() bool { return rcv.Counts().Accepted > before })
		kill(cmd)
	}
	// 3. Once more, to the end.
	px.SetLatency(0)
	cmd = start(cfg)
	waitFor(t, "the outbox to drain", 60*time.Second, func() bool {
		s, err := status()
		return err == nil && s.Sync.QueuedMessages == 0 && s.Sync.PendingBatches == 0
	})
	kill(cmd)

	st, err := store.Open(filepath.Join(dir, "data", "hearth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ds store.DeliveryState
	var ps store.OutboxStats
	_ = st.View(func(tx *store.Tx) error {
		ds, _ = tx.DeliveryState()
		ps, _ = tx.OutboxStats()
		return nil
	})
	c := rcv.Counts()
	t.Logf("receiver: %+v; the hub counts %d delivered", c, ds.Delivered)
	if ps.Queued+ps.BatchMessages != 0 || c.Unique != int(ds.Delivered) || c.Unique < 20 {
		t.Errorf("receiver %+v; hub delivered %d, pending %+v: want every message once after de-duplication", c, ds.Delivered, ps)
	}
	if c.Duplicates == 0 || c.Duplicates > 3*5 {
		t.Errorf("%d duplicates: want 1..15 (at most one batch of 5 per kill)", c.Duplicates)
	}
}

// `config check` (and so run) refuses a write key file others can read, naming the
// key, and passes the same configuration once the file is private.
func TestSyncConfigCheckWriteKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "segment.key", "k\n")
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "hearth.yaml", fmt.Sprintf("data_dir: %s\nsync:\n  transport: segment\n  segment:\n    endpoint: https://cdp.example\n    write_key_file: %s\n",
		filepath.Join(dir, "data"), keyFile))
	code, _, errs := runCLI(t, "config", "check", cfg)
	if code != 1 || !strings.Contains(errs, "sync.segment.write_key_file: "+keyFile+" is open to others") {
		t.Errorf("exit %d:\n%s", code, errs)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "config", "check", cfg); code != 0 {
		t.Errorf("exit %d: %s%s", code, out, errs)
	}
}
