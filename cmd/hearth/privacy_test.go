package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/sync/cdptest"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/transport"
)

// startRestartable runs the agent as `hearth run` does (runAgent: an erasure restarts
// it in place); cur returns the agent running now, gen how many were built.
func startRestartable(t *testing.T, cfg config.Config, log *slog.Logger) (cur func() *agent, gen func() int, stop func()) {
	t.Helper()
	var mu sync.Mutex
	var latest *agent
	n := 0
	first := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- runAgent(ctx, cfg, log, io.Discard, func(a *agent) {
			mu.Lock()
			latest = a
			n++
			if n == 1 {
				close(first)
			}
			mu.Unlock()
		})
	}()
	select {
	case <-first:
	case err := <-errc:
		t.Fatalf("agent: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	t.Cleanup(stop)
	cur = func() *agent { mu.Lock(); defer mu.Unlock(); return latest }
	gen = func() int { mu.Lock(); defer mu.Unlock(); return n }
	return cur, gen, stop
}

// metric returns the value of one series of the agent's /metrics (0 when absent).
func metric(t *testing.T, admin, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(getText(t, admin+"/metrics"))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// queuedOf returns the ids of the messages of category cat waiting in the outbox
// (queued or in a formed batch).
func queuedOf(t *testing.T, st *store.Store, cat string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := st.View(func(tx *store.Tx) error {
		if err := tx.Queued(0, func(m store.Message) error {
			if m.Category == cat {
				out[m.ID] = true
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Batches(func(b store.Batch) error {
			for _, m := range b.Messages {
				if m.Category == cat {
					out[m.ID] = true
				}
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func isUsage(e cdptest.Event) bool {
	return e.Event == transport.EventDeviceDay || e.Event == transport.EventHealth
}

// Consent withdrawn mid-stream: what was queued of it is purged, nothing of it
// reaches the receiver afterwards (while the simulated household goes on making
// days), and the audit records the change, who made it and through what. The audit
// of deliveries names each batch's transport, endpoint, categories and message ids,
// and `hearth audit --show` prints the payload the receiver got.
func TestConsentWithdrawnMidStream(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	cfg := syncConfig(t, url, writeFile(t, t.TempDir(), "write.key", "k\n"))
	// A simulated day every ~4 s, for 20 days (then the simulation reaches the
	// present and goes on in real time): days go on closing after the withdrawal.
	cfg.Sim.History = config.Duration(20 * 24 * time.Hour)
	cfg.Sim.Speed = 20000
	a, _ := startAgent(t, cfg)
	admin := "http://" + a.adminLn.Addr().String()
	addr := a.adminLn.Addr().String()
	conf := cliConfig(t, cfg)
	if out, err := hearthCLI(t, "consent", "grant", "usage", "--addr", addr, "--config", conf); err != nil || !strings.Contains(out, "consent usage granted") {
		t.Fatalf("consent grant: %v\n%s", err, out)
	}
	countUsage := func() (n int) {
		for _, e := range rcv.Events() {
			if isUsage(e) {
				n++
			}
		}
		return n
	}
	waitFor(t, "usage summaries to arrive", 60*time.Second, func() bool { return countUsage() >= 2 })

	// The receiver goes away: what the household allowed piles up in the outbox.
	rcv.SetDown(true)
	waitFor(t, "usage messages queued", 60*time.Second, func() bool { return len(queuedOf(t, a.st, privacy.Usage)) >= 2 })
	queued := queuedOf(t, a.st, privacy.Usage)
	out, err := hearthCLI(t, "consent", "withdraw", "usage", "--addr", addr, "--config", conf)
	if err != nil || !strings.Contains(out, "consent usage withdrawn") {
		t.Fatalf("consent withdraw: %v\n%s", err, out)
	}
	before := countUsage()
	if left := queuedOf(t, a.st, privacy.Usage); len(left) != 0 {
		t.Fatalf("after the withdrawal %d usage messages are still in the outbox", len(left))
	}
	withheld := `hearth_sync_withheld_total{type="device_day"}`
	w0 := metric(t, admin, withheld)
	rcv.SetDown(false)
	// Afterwards: at least three more simulated days closed (and were withheld), and
	// every message waiting then has left.
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(getText(t, admin+"/metrics"), "\n") {
				if strings.Contains(l, "hearth_sync") || strings.Contains(l, "sim") {
					t.Log(l)
				}
			}
		}
	})
	waitFor(t, "more days withheld", 90*time.Second, func() bool { return metric(t, admin, withheld) >= w0+3 })
	waiting := queuedOf(t, a.st, privacy.Tags)
	for id := range queuedOf(t, a.st, privacy.Sensitive) {
		waiting[id] = true
	}
	waitFor(t, "what waited to leave", 90*time.Second, func() bool {
		got := map[string]bool{}
		for _, e := range rcv.Events() {
			got[e.MessageID] = true
		}
		for id := range waiting {
			if !got[id] {
				return false
			}
		}
		return rcv.Counts().Unique > 0
	})
	if n := countUsage(); n != before {
		t.Errorf("%d usage events reached the receiver after the withdrawal", n-before)
	}
	for _, e := range rcv.Events() {
		if queued[e.MessageID] {
			t.Errorf("message %s, queued before the withdrawal, reached the receiver", e.MessageID)
		}
	}

	// The audit: the two decisions, and the deliveries.
	var l auditList
	getJSON(t, admin+"/v1/audit?kind=consent", &l)
	if len(l.Entries) != 2 {
		t.Fatalf("audit of consent changes: %+v, want 2", l.Entries)
	}
	w := l.Entries[1].Detail
	if w["category"] != "usage" || w["granted"] != false || w["via"] != "cli" || w["purged"].(float64) < float64(len(queued)) {
		t.Errorf("the withdrawal's audit entry: %v (want usage, withdrawn, via cli, purged >= %d)", w, len(queued))
	}
	getJSON(t, admin+"/v1/audit?kind=delivery&limit=1000", &l)
	got := map[string]bool{}
	for _, e := range rcv.Events() {
		got[e.MessageID] = true
	}
	audited := map[string]bool{}
	host := strings.TrimPrefix(url, "http://")
	for _, e := range l.Entries {
		if e.Transport != "segment" || !strings.HasPrefix(host, e.Endpoint) || e.Bytes <= 0 || len(e.Categories) == 0 || e.Messages != len(e.MessageIDs) {
			t.Errorf("delivery audit entry %+v", e)
		}
		for _, id := range e.MessageIDs {
			audited[id] = true
		}
	}
	for id := range got {
		if !audited[id] {
			t.Errorf("message %s reached the receiver but is not in the audit", id)
		}
	}
	text, err := hearthCLI(t, "audit", "--addr", addr, "--config", conf)
	if err != nil || !strings.Contains(text, "usage") || !strings.Contains(text, "withdrawn") {
		t.Errorf("hearth audit: %v\n%s", err, text)
	}
	last := l.Entries[len(l.Entries)-1]
	payload, err := hearthCLI(t, "audit", "--show", strconv.FormatUint(last.Seq, 10), "--addr", addr, "--config", conf)
	if err != nil {
		t.Fatalf("hearth audit --show: %v\n%s", err, payload)
	}
	for _, id := range last.MessageIDs {
		if !strings.Contains(payload, id) {
			t.Errorf("hearth audit --show %d lacks message %s:\n%s", last.Seq, id, payload)
		}
	}
}

// pubLines publishes each line as one message with mosquitto_pub -l.
func pubLines(t *testing.T, broker, user, pw, topic string, lines []string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(broker)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-u", user, "-P", pw, "-q", "1", "-t", topic, "-l")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

// scanDir counts the occurrences of each needle in every file under dir.
func scanDir(t *testing.T, dir string, needles ...[]byte) (counts []int, files int, where map[string]bool) {
	t.Helper()
	counts = make([]int, len(needles))
	where = map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for i, n := range needles {
			if c := bytes.Count(b, n); c > 0 {
				counts[i] += c
				where[filepath.Base(p)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts, files, where
}

// addDevice registers a device through the CLI and returns its MQTT password.
func addDevice(t *testing.T, addr, conf, name, kind string) string {
	t.Helper()
	out, err := hearthCLI(t, "device", "add", name, "--kind", kind, "--addr", addr, "--config", conf)
	m := pwLine.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("device add %s: %v\n%s", name, err, out)
	}
	return m[1]
}

// After `hearth forget --device`, a byte scan of the store and of every other file
// under data_dir finds nothing of a marker planted in the device's id and in its
// payloads, nor its pseudonym; every reading of the other devices is still there;
// the receiver got the erasure request; the agent came back by itself.
func TestForgetDeviceLeavesNoByte(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	cfg := syncConfig(t, url, writeFile(t, t.TempDir(), "write.key", "k\n"))
	cfg.Sim.Enabled = false
	cur, gen, _ := startRestartable(t, cfg, testLogger(t))
	a := cur()
	addr := a.adminLn.Addr().String()
	admin := "http://" + addr
	conf := cliConfig(t, cfg)
	if _, err := hearthCLI(t, "consent", "grant", "usage", "--addr", addr, "--config", conf); err != nil {
		t.Fatal(err)
	}
	const marker = "zqmark7"
	gone := "fridge1-" + marker
	others := map[string]string{"washer2": "washer", "oven3": "oven"}
	// Enough readings that their pages are not all reused by the erasure's own
	// writes: without the rewrite, the marker stays in bbolt's free pages.
	const per = 1500
	lines := func(label string) []string { // batches of 100 readings (broker.publish_rate)
		var ls, batch []string
		for i := 0; i < per; i++ {
			batch = append(batch, fmt.Sprintf(`{"signal":"error","value":%d,"label":"%s-%d"}`, i+1, label, i))
			if len(batch) == 100 || i == per-1 {
				ls = append(ls, "["+strings.Join(batch, ",")+"]")
				batch = nil
			}
		}
		return ls
	}
	broker := a.brokerLn.Addr().String()
	pubLines(t, broker, gone, addDevice(t, addr, conf, gone, "fridge"), "hearth/v1/"+gone+"/readings", lines("payload-"+marker))
	for name, kind := range others {
		pubLines(t, broker, name, addDevice(t, addr, conf, name, kind), "hearth/v1/"+name+"/readings", lines("kept"))
	}
	readings := func() map[string]int {
		var devs []store.DeviceInfo
		getJSON(t, admin+"/v1/devices", &devs)
		out := map[string]int{}
		for _, d := range devs {
			out[d.ID] = int(d.Readings)
		}
		return out
	}
	waitFor(t, "every reading acknowledged", 60*time.Second, func() bool {
		r := readings()
		return r[gone] == per && r["washer2"] == per && r["oven3"] == per
	})
	pseudo := privacy.NewPseudonymizer(a.key).ID("device", gone)
	// The marker is in the store before (else the scan below proves nothing).
	pre, _, _ := scanDir(t, cfg.DataDir, []byte(marker))
	if pre[0] == 0 {
		t.Fatal("the marker is in no file under data_dir before the erasure")
	}

	out, err := hearthCLI(t, "forget", "--device", gone, "--yes", "--addr", addr, "--config", conf)
	if err != nil || !strings.Contains(out, "erasure") {
		t.Fatalf("hearth forget: %v\n%s", err, out)
	}
	if gen() != 2 {
		t.Errorf("the agent was built %d times, want 2 (one restart in place)", gen())
	}
	b := cur()
	// The device's pseudonym stays where the erasure itself is recorded (its audit
	// entry, the list of forgotten devices, the request until it is delivered):
	// docs/privacy.md. Its local id and payloads are gone.
	counts, files, where := scanDir(t, cfg.DataDir, []byte(marker), []byte(gone))
	t.Logf("scan after forget: %d files, marker %d (before: %d), device id %d", files, counts[0], pre[0], counts[1])
	if counts[0] != 0 || counts[1] != 0 {
		t.Errorf("after forget: marker found %d times, device id %d times, in %v", counts[0], counts[1], where)
	}
	r := readings()
	if _, ok := r[gone]; ok || r["washer2"] != per || r["oven3"] != per {
		t.Errorf("readings after forget: %v, want washer2 and oven3 with %d each and no %s", r, per, gone)
	}
	var n int
	if _, err := b.st.ReadEvents(0, 100000, func(uint64, *device.Reading) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2*per {
		t.Errorf("the store holds %d readings after forget, want the other devices' %d", n, 2*per)
	}
	waitFor(t, "the erasure request upstream", 30*time.Second, func() bool { return len(rcv.Erasures()) == 1 })
	e := rcv.Erasures()[0]
	if e.Properties["scope"] != "device" || e.Properties["device"] != pseudo {
		t.Errorf("erasure request %+v, want scope device for %s", e.Properties, pseudo)
	}
	for _, e := range rcv.Events() {
		if strings.Contains(fmt.Sprint(e), gone) {
			t.Errorf("the device's local id left the home: %+v", e)
		}
	}
	var l auditList
	getJSON(t, admin+"/v1/audit?kind=erasure", &l)
	if len(l.Entries) != 1 || l.Entries[0].Detail["scope"] != "device" {
		t.Errorf("audit of erasures: %+v", l.Entries)
	}
}

// After `hearth forget --household`, a byte scan of every file under data_dir
// finds no device's id nor the marker planted in their payloads, the store holds no
// reading and no device, the erasure's own audit entry says its scan found nothing,
// and the receiver got the household's erasure request. The agent's scan once
// found 2,261 copies: the store's erasure was lost at its commit.
func TestForgetHouseholdLeavesNoByte(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	cfg := syncConfig(t, url, writeFile(t, t.TempDir(), "write.key", "k\n"))
	cfg.Sim.Enabled = false
	cur, gen, _ := startRestartable(t, cfg, testLogger(t))
	a := cur()
	addr := a.adminLn.Addr().String()
	admin := "http://" + addr
	conf := cliConfig(t, cfg)
	const marker = "zqhome5"
	devs := map[string]string{"fridge1-" + marker: "fridge", "washer2-" + marker: "washer"}
	const per = 500
	broker := a.brokerLn.Addr().String()
	for name, kind := range devs {
		var batch []string
		for i := 0; i < per; i++ {
			batch = append(batch, fmt.Sprintf(`{"signal":"error","value":%d,"label":"payload-%s-%d"}`, i+1, marker, i))
		}
		var ls []string
		for i := 0; i < per; i += 100 {
			ls = append(ls, "["+strings.Join(batch[i:i+100], ",")+"]")
		}
		pubLines(t, broker, name, addDevice(t, addr, conf, name, kind), "hearth/v1/"+name+"/readings", ls)
	}
	waitFor(t, "every reading acknowledged", 60*time.Second, func() bool {
		n := 0
		for _, d := range cur().st.Devices() {
			n += int(d.Readings)
		}
		return n == 2*per
	})
	if pre, _, _ := scanDir(t, cfg.DataDir, []byte(marker)); pre[0] == 0 {
		t.Fatal("the marker is in no file under data_dir before the erasure")
	}
	out, err := hearthCLI(t, "forget", "--household", "--yes", "--addr", addr, "--config", conf)
	if err != nil || !strings.Contains(out, "erasure") {
		t.Fatalf("hearth forget --household: %v\n%s", err, out)
	}
	if gen() != 2 {
		t.Errorf("the agent was built %d times, want 2 (one restart in place)", gen())
	}
	counts, files, where := scanDir(t, cfg.DataDir, []byte(marker))
	t.Logf("scan after forget --household: %d files, marker %d", files, counts[0])
	if counts[0] != 0 {
		t.Errorf("after forget --household the marker is found %d times, in %v", counts[0], where)
	}
	b := cur()
	if d := b.st.Devices(); len(d) != 0 {
		t.Errorf("devices after forget --household: %+v", d)
	}
	var n int
	if _, err := b.st.ReadEvents(0, 100000, func(uint64, *device.Reading) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the store holds %d readings after forget --household", n)
	}
	var l auditList
	getJSON(t, admin+"/v1/audit?kind=erasure", &l)
	if len(l.Entries) != 1 {
		t.Fatalf("audit of erasures: %+v", l.Entries)
	}
	if d := l.Entries[0].Detail; d["scope"] != "household" || d["scan"].(map[string]any)["hits"] != float64(0) {
		t.Errorf("the erasure's audit entry: %v, want scope household and a scan with no hit", d)
	}
	waitFor(t, "the household erasure upstream", 30*time.Second, func() bool { return len(rcv.Erasures()) == 1 })
	if e := rcv.Erasures()[0]; e.Properties["scope"] != "household" {
		t.Errorf("erasure request %+v, want scope household", e.Properties)
	}
}

// The pseudonym key: its own file, 0600, not in the store; refused when others may
// read it; `hearth forget --household` replaces it (the old pseudonym is in the
// erasure request, the new one on what is sent after) and it is never logged.
func TestPseudonymKeyFile(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	cfg := syncConfig(t, url, writeFile(t, t.TempDir(), "write.key", "k\n"))
	cfg.Sim.Enabled = false
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cur, _, stop := startRestartable(t, cfg, log)
	a := cur()
	keyFile := cfg.KeyFile()
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v: want mode 0600", fi, err)
	}
	key1, err := privacy.ReadKey(keyFile)
	if err != nil || !bytes.Equal(key1, a.key) {
		t.Fatalf("key file %x, %v; the agent uses %x", key1, err, a.key)
	}
	counts, _, _ := scanDir(t, filepath.Dir(a.st.Path()), key1, []byte(hex.EncodeToString(key1)))
	if counts[0]+counts[1] != 1 { // the key file itself, in hex
		t.Errorf("the key is in %d places under data_dir, want only its file", counts[0]+counts[1])
	}
	household1 := a.sum.Household()
	addr := a.adminLn.Addr().String()
	conf := cliConfig(t, cfg)
	if _, err := hearthCLI(t, "consent", "grant", "usage", "--addr", addr, "--config", conf); err != nil {
		t.Fatal(err)
	}
	out, err := hearthCLI(t, "forget", "--household", "--yes", "--addr", addr, "--config", conf)
	if err != nil {
		t.Fatalf("forget --household: %v\n%s", err, out)
	}
	key2, err := privacy.ReadKey(keyFile)
	if err != nil || bytes.Equal(key2, key1) || !bytes.Equal(cur().key, key2) {
		t.Fatalf("after forget --household the key is %x (%v), before %x", key2, err, key1)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("the new key file has mode %04o", fi.Mode().Perm())
	}
	if h2 := cur().sum.Household(); h2 == household1 {
		t.Error("the household's pseudonym did not change with the key")
	}
	waitFor(t, "the household erasure upstream", 30*time.Second, func() bool { return len(rcv.Erasures()) == 1 })
	if e := rcv.Erasures()[0]; e.AnonymousID != household1 || e.Properties["scope"] != "household" {
		t.Errorf("erasure request %+v, want scope household for %s", e, household1)
	}
	stop()
	for _, k := range [][]byte{key1, key2} {
		if strings.Contains(logs.String(), hex.EncodeToString(k)) {
			t.Errorf("the key %x is in the log", k)
		}
	}
	// Readable by the group: refused, with what to do.
	if err := os.Chmod(keyFile, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = newAgent(cfg, testLogger(t), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "privacy.key_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("an agent with a key file of mode 0640: %v", err)
	}
}

// `hearth export`: the bundle's lines are JSON {type, data}, with the header, the
// devices, every reading, and the audit.
func TestExportBundle(t *testing.T) {
	cfg := testConfig(t)
	a, _ := startAgent(t, cfg)
	addr := a.adminLn.Addr().String()
	conf := cliConfig(t, cfg)
	pubLines(t, a.brokerLn.Addr().String(), "washer2", addDevice(t, addr, conf, "washer2", "washer"), "hearth/v1/washer2/readings",
		[]string{`{"signal":"door","value":1}`, `{"signal":"door","value":0}`, `{"signal":"door","value":1}`})
	waitFor(t, "readings", 30*time.Second, func() bool {
		return a.st.Devices() != nil && len(a.st.Devices()) == 1 && a.st.Devices()[0].Readings == 3
	})
	if _, err := hearthCLI(t, "consent", "withdraw", "tags", "--addr", addr, "--config", conf); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bundle.jsonl")
	if out, err := hearthCLI(t, "export", "-o", file, "--addr", addr, "--config", conf); err != nil {
		t.Fatalf("hearth export: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for i, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var x struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(l, &x); err != nil || x.Type == "" || len(x.Data) == 0 {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		if i == 0 && x.Type != "header" {
			t.Errorf("first line is %q, want the header", x.Type)
		}
		types[x.Type]++
	}
	if types["header"] != 1 || types["device"] != 1 || types["reading"] != 3 || types["audit"] != 1 {
		t.Errorf("bundle has %v: want 1 header, 1 device, 3 readings, 1 audit entry", types)
	}
}
