package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// A Day round-trips through its typed view, and the fast decoder (encoding/json/v2)
// reads exactly what encoding/json wrote.
func TestDayRecord(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"), nil)
	defer s.Close()
	d := &Day{Date: "2026-03-02", Device: "f1", Kind: device.KindFridge, Signal: device.SignalDoor, Weekday: time.Monday,
		First: time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC), Last: time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC),
		Starts: []uint16{420, 1320}, EnergyWh: 12.5, HourWh: make([]float64, 24), PowerSec: 3600,
		Inventory: Inventory{Stocked: map[string]uint32{"dairy": 2}, Taken: map[string]uint32{"meat": 1}}}
	d.Stats.Add(1)
	d.Stats.Add(0)
	d.Hours[7].Add(1)
	d.Activations[7] = 1
	d.Sessions.Add(75)
	d.Cycles = Cycles{Count: 1, EnergyWh: 900, TotalSec: 5400}
	d.Cycles.Hours[9] = 1
	other := *d
	other.Date, other.Device = "2026-03-03", "f2"
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutDay(d); err != nil {
			return err
		}
		return tx.PutDay(&other)
	}); err != nil {
		t.Fatal(err)
	}
	var got *Day
	var window []string
	if err := s.View(func(tx *Tx) error {
		var err error
		if got, err = tx.Day(d.Key()); err != nil {
			return err
		}
		return tx.Days("2026-03-02", "2026-03-02", func(x *Day) error { window = append(window, x.Date+"/"+x.Device); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	var viaV1 Day
	raw, _ := json.Marshal(d)
	if err := json.Unmarshal(raw, &viaV1); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &viaV1) {
		t.Errorf("typed view read\n%+v\nencoding/json reads\n%+v", got, viaV1)
	}
	if strings.Join(window, ",") != "2026-03-02/f1" {
		t.Errorf("window of one date: %v", window)
	}
}

// A record that is JSON but not a Day (a damaged page that passed the page check, a
// bug) is a *RecordError; Quarantine moves it into the audit trail and counts it.
func TestQuarantine(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"), &Options{Registerer: reg})
	defer s.Close()
	k := DayKey{Date: "2026-03-02", Device: "f1", Signal: device.SignalDoor}
	if err := s.Update(func(tx *Tx) error { return tx.put(Rollups, dayKey(k), []byte(`{"date": 5}`)) }); err != nil {
		t.Fatal(err)
	}
	var re *RecordError
	err := s.View(func(tx *Tx) error { _, err := tx.Day(k); return err })
	if !errors.As(err, &re) || re.Bucket != Rollups || string(re.Key) != string(dayKey(k)) {
		t.Fatalf("reading a record that is not a Day: %v", err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Quarantine(re) }); err != nil {
		t.Fatal(err)
	}
	var audit []string
	if err := s.View(func(tx *Tx) error {
		if d, err := tx.Day(k); d != nil || err != nil {
			t.Errorf("after quarantine: %+v, %v", d, err)
		}
		return tx.forEach(Audit, nil, func(_, v []byte) error { audit = append(audit, string(v)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if last := audit[len(audit)-1]; !strings.Contains(last, `"record_quarantined"`) || !strings.Contains(last, `"bucket":"rollups"`) ||
		!strings.Contains(last, `"value_base64":"eyJkYXRlIjogNX0="`) {
		t.Errorf("audit: %s", last)
	}
	if v, err := metricset.Value(reg, "hearth_store_records_quarantined_total", "bucket", "rollups"); err != nil || v != 1 {
		t.Errorf("hearth_store_records_quarantined_total{bucket=rollups} = %v, %v", v, err)
	}
}

// Tags and the tag log through their typed views; the clocks a consumer records.
func TestTagRecordsAndClocks(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"), nil)
	defer s.Close()
	at := time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutTag(&Tag{Name: "habit.a", Score: 0.5, Consent: "usage"}); err != nil {
			return err
		}
		for i, r := range []string{"new", "activated", "score"} {
			if _, err := tx.AppendTagChange(&TagChange{Tag: "habit.a", Reason: r, At: at.Add(time.Duration(i) * time.Hour), Consent: "usage"}); err != nil {
				return err
			}
		}
		if err := tx.PutDataClock("f1", at); err != nil {
			return err
		}
		return tx.PutDataClock("f2", at.Add(time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		tg, err := tx.Tag("habit.a")
		if err != nil || tg == nil || tg.Score != 0.5 {
			t.Errorf("tag: %+v, %v", tg, err)
		}
		if tg, err := tx.Tag("habit.none"); tg != nil || err != nil {
			t.Errorf("a tag never stored: %+v, %v", tg, err)
		}
		var reasons []string
		if err := tx.TagChanges(1, func(seq uint64, c *TagChange) error {
			reasons = append(reasons, c.Reason)
			return nil
		}); err != nil {
			return err
		}
		if strings.Join(reasons, ",") != "activated,score" {
			t.Errorf("changes after the first: %v", reasons)
		}
		clock, err := tx.DataClock()
		if err != nil || !clock.Equal(at.Add(time.Hour)) {
			t.Errorf("data clock %v, %v: want the newest device's", clock, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
