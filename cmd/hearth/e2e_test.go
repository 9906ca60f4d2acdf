package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/poll"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/summary"
)

// waitFor is poll.Until: the one way these tests wait.
var waitFor = poll.Until

func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	// The test process's GOMAXPROCS is left alone: agents run side by side here, and
	// internal/procs is tested on its own.
	cfg.CPU.BurstRate = 0
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Timezone = "UTC"
	cfg.Broker.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Sim.Enabled = false
	cfg.Report.Interval = 0
	cfg.Rollup.Interval = config.Duration(20 * time.Millisecond)
	cfg.Tagging.Interval = config.Duration(50 * time.Millisecond)
	cfg.Sync.Interval = config.Duration(50 * time.Millisecond)
	cfg.Sync.BatchAge = config.Duration(100 * time.Millisecond)
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestEndToEnd: a simulated fridge publishes over a real TCP socket to the embedded
// broker; its readings are committed, rolled up, tagged and summarised into the file
// sink. The door sessions the rollups, the tags and the summaries report equal what
// the simulation generated.
func TestEndToEnd(t *testing.T) {
	// Shutdown leaves nothing running: every goroutine the agent, the broker and the
	// simulated appliances started has ended once run returns (checked at the end).
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t)
	cfg.Consent.Usage = true // a real (not "sim-") device: its summaries need consent
	cfg.Consent.Tags = true  // and its tag changes
	a, err := newAgent(cfg, testLogger(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.run(ctx) }()

	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
	const days = 10
	hh, err := sim.New(sim.Options{Persona: sim.PersonaDoorAjar, Seed: 42, Start: start, Location: time.UTC,
		Kinds: []device.Kind{device.KindFridge, device.KindWasher, device.KindOven}, Prefix: "e2e-"})
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{}
	for _, ap := range hh.Appliances() {
		_, pw, err := a.creds.Add(ap.ID, ap.Kind)
		if err != nil {
			t.Fatal(err)
		}
		creds[ap.ID] = pw
	}
	var published atomic.Int64
	if err := sim.Publish(context.Background(), hh, sim.PublishOptions{
		Broker: "tcp://" + a.brokerLn.Addr().String(), Credentials: creds, Until: start.AddDate(0, 0, days).Add(6 * time.Hour),
		Tick: time.Millisecond, OnPublished: func(rs []device.Reading, _ int) { published.Add(int64(len(rs))) }}); err != nil {
		m := getText(t, "http://"+a.adminLn.Addr().String()+"/metrics")
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "hearth_broker") || strings.HasPrefix(l, "hearth_store_readings") || strings.HasPrefix(l, "hearth_ingest_readings") || strings.HasPrefix(l, "hearth_store_queue") {
				t.Log(l)
			}
		}
		t.Fatal(err)
	}
	// Every publish was acknowledged, so every reading is committed.
	if got := a.st.LastSeq(); got != uint64(published.Load()) {
		t.Fatalf("store holds %d readings, sim published (and had acknowledged) %d", got, published.Load())
	}
	// The API answers while the agent runs.
	base := "http://" + a.adminLn.Addr().String()
	waitFor(t, "rollups to catch up", 10*time.Second, func() bool {
		var cur uint64
		_ = a.st.View(func(tx *store.Tx) error { cur = tx.Cursor(rollupstage.CursorName); return nil })
		return cur == a.st.LastSeq()
	})
	// The tags served must come from an evaluation that began after the rollups caught
	// up: one already running may have read the store before the last readings (CI once
	// saw the inventory rules still at no_data). The second evaluation from now on did.
	evals := metricValue(t, a.reg, "hearth_tagging_evaluations_total", "")
	waitFor(t, "two tag evaluations after the rollups caught up", 10*time.Second, func() bool {
		return metricValue(t, a.reg, "hearth_tagging_evaluations_total", "") >= evals+2
	})
	waitFor(t, "tags", 10*time.Second, func() bool { return len(a.eng.Tags()) >= 3 })
	var apiTags []tagging.Tag
	getJSON(t, base+"/v1/tags", &apiTags)
	if len(apiTags) < 3 {
		t.Errorf("/v1/tags: %d tags, want at least 3", len(apiTags))
	}
	for _, tg := range apiTags { // each tag's confidence beside its score: here, days with data of 28
		if tg.Status != tagging.StatusStale && (tg.Confidence <= 0 || tg.Confidence > 1) {
			t.Errorf("/v1/tags: %s has confidence %v, want (0,1]", tg.Name, tg.Confidence)
		}
	}
	if got := getText(t, base+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	if got := getText(t, base+"/readyz"); got != "ready\n" {
		t.Errorf("/readyz = %q", got)
	}
	var devs []store.DeviceInfo
	getJSON(t, base+"/v1/devices", &devs)
	var sum uint64
	for _, d := range devs {
		sum += d.Readings
	}
	if len(devs) != 3 || sum != uint64(published.Load()) {
		t.Errorf("/v1/devices: %d devices with %d readings; want 3 with %d", len(devs), sum, published.Load())
	}
	var status Status
	getJSON(t, base+"/v1/status", &status)
	if !status.Ready || status.Raw.Items != int64(published.Load()) || status.Raw.Bytes == 0 {
		t.Errorf("/v1/status: %+v", status)
	}
	metrics := getText(t, base+"/metrics")
	if !strings.Contains(metrics, "hearth_store_readings_committed_total ") || !strings.Contains(metrics, "hearth_ingest_readings_total{result=\"committed\"}") {
		t.Errorf("/metrics lacks the ingest counters")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("run: %v", err)
	}

	// Compare with the truth, day by day. The simulation ran 6 hours into day 11, so
	// every session of the first 10 days has ended (the truth's own rule).
	truth := hh.Truth()
	if len(truth) != days {
		t.Fatalf("truth has %d days, want %d", len(truth), days)
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, cfg.Store.File), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	door := map[string]store.Day{}
	if err := st.View(func(tx *store.Tx) error {
		return tx.Days(truth[0].Date, "9999", func(d *store.Day) error {
			if d.Device == "e2e-fridge" && d.Signal == device.SignalDoor {
				door[d.Date] = *d
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	var wantOpen, wantLong int
	for _, tr := range truth {
		d := door[tr.Date]
		if int(d.Sessions.Count) != tr.FridgeOpenings || int(d.Sessions.Over(60)) != tr.FridgeLongOpenings ||
			math.Abs(d.Sessions.TotalSec-tr.FridgeOpenSeconds) > 0.01 {
			t.Errorf("%s: rollup has %d openings (%d over 60 s, %.3f s open); simulation made %d (%d, %.3f s)",
				tr.Date, d.Sessions.Count, d.Sessions.Over(60), d.Sessions.TotalSec, tr.FridgeOpenings, tr.FridgeLongOpenings, tr.FridgeOpenSeconds)
		}
		wantOpen += tr.FridgeOpenings
		wantLong += tr.FridgeLongOpenings
	}
	if wantOpen < 50 {
		t.Fatalf("only %d fridge openings in %d days: the test proves little", wantOpen, days)
	}

	// The tag's evidence is the same numbers, plus the sessions of the 6 hours of day 11.
	var tag store.Tag // as the final evaluation at shutdown stored it
	if err := st.View(func(tx *store.Tx) error {
		p, err := tx.Tag("habit.fridge_door_long_open")
		if p != nil {
			tag = *p
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	extra := door[start.AddDate(0, 0, days).Format(time.DateOnly)]
	wantOpen += int(extra.Sessions.Count)
	wantLong += int(extra.Sessions.Over(60))
	if tag.Evidence["openings"] != float64(wantOpen) || tag.Evidence["long_openings"] != float64(wantLong) {
		t.Errorf("tag evidence %v; want openings=%d long_openings=%d", tag.Evidence, wantOpen, wantLong)
	}
	if want := float64(wantLong) / float64(wantOpen); math.Abs(tag.Score-want) > 1e-9 {
		t.Errorf("tag score %.4f, want %.4f", tag.Score, want)
	}

	// The summaries in the file sink carry the same per-day numbers, under a pseudonym.
	key, err := privacy.ReadKey(cfg.KeyFile()) // the pseudonym key's own file, not the store
	if err != nil {
		t.Fatal(err)
	}
	fridgePseudo := privacy.NewPseudonymizer(key).ID("device", "e2e-fridge")
	msgs := readSink(t, filepath.Join(cfg.DataDir, cfg.Sync.Dir))
	found := 0
	tagMsgs := 0
	for _, m := range msgs {
		if strings.Contains(string(m), "e2e-") {
			t.Fatalf("a local device id left the home: %s", m)
		}
		var head struct{ Type string }
		_ = json.Unmarshal(m, &head)
		switch head.Type {
		case "tag":
			tagMsgs++
		case "device_day":
			var dd summary.DeviceDay
			if err := json.Unmarshal(m, &dd); err != nil {
				t.Fatal(err)
			}
			if dd.Device != fridgePseudo {
				continue
			}
			for _, tr := range truth {
				if tr.Date != dd.Date {
					continue
				}
				found++
				s := dd.Signals[device.SignalDoor]
				if s == nil || int(s.Sessions) != tr.FridgeOpenings || int(s.Over60s) != tr.FridgeLongOpenings ||
					math.Abs(s.OnSeconds-math.Round(tr.FridgeOpenSeconds)) > 1 {
					t.Errorf("summary %s: %+v; simulation: %d openings, %d long, %.0f s", dd.Date, s, tr.FridgeOpenings, tr.FridgeLongOpenings, tr.FridgeOpenSeconds)
				}
			}
		}
	}
	if found != days {
		var dates []string
		for _, m := range msgs {
			var dd summary.DeviceDay
			if json.Unmarshal(m, &dd) == nil && dd.Type == "device_day" {
				dates = append(dates, dd.Date+"/"+string(dd.Kind))
			}
		}
		t.Errorf("found %d fridge day summaries in the sink, want %d; device days in the sink: %v", found, days, dates)
	}
	if tagMsgs == 0 {
		t.Error("no tag changes in the sink")
	}
}

func readSink(t *testing.T, dir string) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) == 0 {
		t.Fatalf("no summaries in %s", dir)
	}
	var out [][]byte
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
		fh.Close()
	}
	return out
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getText(t, url)), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
