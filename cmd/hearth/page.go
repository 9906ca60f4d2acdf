package main

// The household's page's data (internal/household renders it).

import (
	"sort"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/household"
)

const (
	pageDays      = 28 // the window of the heatmaps and the score chart
	pageTraffic   = 14 // days of the traffic chart
	pageAuditRows = 50
	// rawBytesPerReading is what a reading takes in the store's event log (FORMAT.md,
	// "events": about 60–80 bytes on disk): the traffic chart's raw bytes kept at home.
	rawBytesPerReading = 70
)

// pageData assembles what the page shows.
func (a *agent) pageData() (household.Data, error) {
	loc := a.cfg.Location()
	d := household.Data{Generated: time.Now(), Household: a.sum.Household(), Transport: a.cfg.Sync.Transport,
		SimulatedExempt: len(a.simIDs) > 0, CrossBorder: a.cfg.CrossBorder()}
	for _, t := range a.eng.Tags() {
		ht := household.Tag{Name: t.Name, Description: t.Description, Score: t.Score, Confidence: t.Confidence, Active: t.Active,
			Status: t.Status, Category: tagCategoryOf(t.Consent)}
		for k, v := range t.Evidence {
			ht.Evidence = append(ht.Evidence, household.Evidence{Name: k, Value: v})
		}
		sort.Slice(ht.Evidence, func(i, j int) bool { return ht.Evidence[i].Name < ht.Evidence[j].Name })
		d.Tags = append(d.Tags, ht)
	}
	sort.SliceStable(d.Tags, func(i, j int) bool { return d.Tags[i].Active && !d.Tags[j].Active })
	cs, err := a.consentState()
	if err != nil {
		return d, err
	}
	for _, c := range cs.Categories {
		d.Consent = append(d.Consent, household.Consent{Category: c.Category, Granted: c.Granted, Source: c.Source, By: c.By, Via: c.Via, At: c.At})
	}
	devs := map[string]*household.Device{}
	for _, di := range a.st.Devices() {
		hd := &household.Device{ID: di.ID, Kind: string(di.Kind), Readings: di.Readings, LastSeen: di.LastSeen}
		devs[di.ID] = hd
	}
	today := time.Now().In(loc)
	trafficFrom := today.AddDate(0, 0, -(pageTraffic - 1)).Format(time.DateOnly)
	raw := map[string]int64{}
	sent := map[string]int64{}
	err = a.st.View(func(tx *store.Tx) error {
		clock, err := tx.DataClock()
		if err != nil {
			return err
		}
		if clock.IsZero() {
			clock = time.Now()
		}
		end := clock.In(loc)
		for i := pageDays - 1; i >= 0; i-- {
			d.Days = append(d.Days, end.AddDate(0, 0, -i).Format(time.DateOnly))
		}
		from := min(d.Days[0], trafficFrom)
		if err := tx.Days(from, "9999", func(day *store.Day) error {
			if day.Date >= trafficFrom {
				raw[day.Date] += int64(day.Stats.Count) * rawBytesPerReading
			}
			hd := devs[day.Device]
			if hd == nil || day.Date < d.Days[0] || day.Date > d.Days[len(d.Days)-1] {
				return nil
			}
			for h := range 24 {
				hd.Week[day.Weekday][h] += int(day.Activations[h]) + int(day.Cycles.Hours[h])
			}
			return nil
		}); err != nil {
			return err
		}
		// Each tag's score at the end of each day: its last logged change by then.
		series := map[string][]float64{}
		last := map[string]float64{}
		day := 0
		if err := tx.TagChanges(0, func(_ uint64, c *store.TagChange) error {
			date := c.At.In(loc).Format(time.DateOnly)
			for day < len(d.Days) && d.Days[day] < date {
				for name, v := range last {
					series[name] = append(series[name], v)
				}
				day++
			}
			if _, ok := series[c.Tag]; !ok {
				series[c.Tag] = make([]float64, day) // 0 before it was first scored
			}
			last[c.Tag] = c.Score
			return nil
		}); err != nil {
			return err
		}
		for ; day < len(d.Days); day++ {
			for name, v := range last {
				series[name] = append(series[name], v)
			}
		}
		for _, t := range d.Tags {
			pts := series[t.Name]
			if len(pts) == 0 {
				pts = make([]float64, len(d.Days))
			}
			d.TagHistory = append(d.TagHistory, household.Series{Tag: t.Name, Points: pts[len(pts)-len(d.Days):]})
		}
		var rows []household.AuditRow
		if err := tx.PrivacyAudit(0, func(e *store.AuditEntry) error {
			if e.Kind == store.AuditDelivery {
				if date := e.At.In(loc).Format(time.DateOnly); date >= trafficFrom {
					sent[date] += int64(e.Bytes)
				}
			}
			rows = append(rows, household.AuditRow{Seq: e.Seq, At: e.At, Kind: e.Kind, Text: auditWords(*e)})
			if len(rows) > pageAuditRows {
				rows = rows[1:]
			}
			return nil
		}); err != nil {
			return err
		}
		for i := len(rows) - 1; i >= 0; i-- { // newest first
			d.Audit = append(d.Audit, rows[i])
		}
		return nil
	})
	if err != nil {
		return d, err
	}
	for i := pageTraffic - 1; i >= 0; i-- {
		date := today.AddDate(0, 0, -i).Format(time.DateOnly)
		d.Traffic = append(d.Traffic, household.Traffic{Date: date, Sent: sent[date], Raw: raw[date]})
	}
	for _, hd := range devs {
		d.Devices = append(d.Devices, *hd)
	}
	sort.Slice(d.Devices, func(i, j int) bool { return d.Devices[i].ID < d.Devices[j].ID })
	return d, nil
}

// tagCategoryOf is the consent category a tag's messages need.
func tagCategoryOf(rule string) string {
	if rule == "sensitive" {
		return "sensitive"
	}
	return "tags"
}

// auditWords is an audit entry for the household.
func auditWords(e store.AuditEntry) string { return auditText(e) }
