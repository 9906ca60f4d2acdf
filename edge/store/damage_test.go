package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/ingest"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
)

// The corruption table: a store of a few megabytes written by real ingest (so it
// has branch pages, and free pages that Open must find by walking the tree), then
// damaged page by page as a failing SD card or a stray write would, at offsets
// spread over the whole file, and opened. Nothing may panic or fault (bbolt used to:
// at Open, on a goroutine of its own), and every case must end one of three ways:
//
//   - quarantined: moved aside byte for byte, and what salvage copied into the new
//     store is exactly what the original held (nothing damaged passes as data);
//   - opened, with a damaged meta page reported (bbolt uses the other one);
//   - opened clean, because the damaged page was not in use (bbolt's own view of
//     the intact file says so) and every record reads as in the original.
//
// Each case then starts again: the second start must find a healthy store, take a
// reading, and not move anything aside (no boot loop).
func TestDamageTable(t *testing.T) {
	base := damageBase(t)
	ps := base.pageSize
	npages := len(base.file) / ps
	rng := rand.New(rand.NewPCG(14, 1))
	type damage struct {
		kind string
		page int
		do   func(b []byte) []byte
	}
	var cases []damage
	// Pages spread over the data (branches, leaves, free pages), one of the file's
	// grown tail, and the pages most worth hitting: the root, each bucket's root
	// page, and two free pages.
	pages := map[int]bool{}
	const spread = 24
	for i := range spread { // over the pages below the high-water mark
		pages[2+i*(base.hwm-2)/spread] = true
	}
	if base.hwm < npages { // and one of the file's grown, unused tail
		pages[(base.hwm+npages)/2] = true
	}
	for _, p := range base.special {
		pages[p] = true
	}
	for i, p := range slices.Sorted(maps.Keys(pages)) {
		off := p * ps
		kinds := []damage{
			{"zeroed page", p, func(b []byte) []byte { clear(b[off : off+ps]); return b }},
			{"random 4 KB", p, func(b []byte) []byte { fill(rng, b[off:off+ps]); return b }},
			{"16 random bytes", p, func(b []byte) []byte {
				at := off + 16 + rng.IntN(ps-32)
				fill(rng, b[at:at+16])
				return b
			}},
			{"bit flipped in header", p, func(b []byte) []byte {
				b[off+rng.IntN(16)] ^= 1 << rng.IntN(8)
				return b
			}}}
		if testing.Short() { // one kind of damage per page, in turn
			kinds = kinds[i%len(kinds) : i%len(kinds)+1]
		}
		cases = append(cases, kinds...)
	}
	cases = append(cases,
		damage{"zeroed meta page", 0, func(b []byte) []byte { clear(b[:ps]); return b }},
		damage{"zeroed meta page", 1, func(b []byte) []byte { clear(b[ps : 2*ps]); return b }},
		damage{"16 random bytes in meta", base.newerMeta, func(b []byte) []byte {
			fill(rng, b[base.newerMeta*ps+32:base.newerMeta*ps+48])
			return b
		}},
		damage{"both meta pages zeroed", 0, func(b []byte) []byte { clear(b[:2*ps]); return b }},
		damage{"truncated to half", npages / 2, func(b []byte) []byte { return b[:len(b)/2] }},
		damage{"truncated: last data page cut", base.hwm - 1, func(b []byte) []byte { return b[:(base.hwm-1)*ps+100] }},
	)

	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	counts := map[string]int{}
	for i, c := range cases {
		name := fmt.Sprintf("%02d %s at page %d", i, c.kind, c.page)
		damaged := c.do(bytes.Clone(base.file))
		path := filepath.Join(t.TempDir(), "hearth.db")
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".keep", base.keep, 0o600); err != nil { // as beside any store
			t.Fatal(err)
		}
		s, err := store.Open(path, &store.Options{Now: func() time.Time { return now }, Protect: []string{rollupstage.CursorName}})
		if err != nil {
			t.Errorf("%s: Open: %v", name, err)
			continue
		}
		var outcome, salvaged string
		switch {
		case s.Recovered != "":
			outcome = "quarantined"
			if moved, err := os.ReadFile(s.Recovered); err != nil || !bytes.Equal(moved, damaged) {
				t.Errorf("%s: the damaged file was not kept byte for byte (%v)", name, err)
			}
			salvaged = checkSalvage(t, name, s, base)
		case s.MetaDamage() != "":
			outcome = "opened: meta page reported"
			if c.page > 1 || !strings.Contains(s.MetaDamage(), fmt.Sprintf("meta page %d", c.page)) {
				t.Errorf("%s: meta damage reported as %q", name, s.MetaDamage())
			}
			if err := s.Check(); err != nil {
				t.Errorf("%s: opened a store that fails its check: %v", name, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			typ := "past the data"
			if c.page < base.hwm {
				typ = base.types[c.page]
			}
			outcome = "opened clean: page " + typ
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if typ != "free" && typ != "past the data" {
				t.Errorf("%s: damage on a %s page went unnoticed", name, typ)
			}
			if got := dumpFile(t, path); !equalDumps(got, base.dump) {
				t.Errorf("%s: opened clean, but the records differ from the original", name)
				for b, recs := range got {
					for k, v := range recs {
						if base.dump[b][k] != v {
							t.Logf("%s: %s %x is %x, was %x", name, b, k, v, base.dump[b][k])
						}
					}
				}
			}
		}
		counts[outcome]++
		t.Logf("%-44s %-9s → %s %s", name, pageType(base, c.page), outcome, salvaged)
		// The next start finds a healthy store: nothing moved aside again.
		s, err = store.Open(path, &store.Options{Now: func() time.Time { return now.Add(time.Hour) }})
		if err != nil {
			t.Errorf("%s: second start: %v", name, err)
			continue
		}
		if s.Recovered != "" {
			t.Errorf("%s: second start moved the store aside again: a loop", name)
		}
		if err := s.Check(); err != nil {
			t.Errorf("%s: second start: check: %v", name, err)
		}
		if err := device.Commit(context.Background(), s, []device.Reading{{Device: "late", Kind: device.KindPlug,
			Signal: device.SignalPower, Value: 1, HubTime: now}}); err != nil {
			t.Errorf("%s: second start refuses readings: %v", name, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d cases on a %d-page store (%d in use): %v", len(cases), npages, base.inUse, counts)
	if len(cases) < spread {
		t.Fatalf("only %d cases", len(cases))
	}
}

// checkSalvage checks what salvage copied into the new store: every record of every
// bucket is the original's, byte for byte (the audit gains the record of the
// quarantine), and the report counts what the new store holds. It returns a
// summary for the table.
func checkSalvage(t *testing.T, name string, s *store.Store, base *damageFixture) string {
	t.Helper()
	rep := s.Salvage()
	if rep == nil {
		t.Errorf("%s: quarantined without a salvage report", name)
		return ""
	}
	path := s.Path()
	installID := s.InstallID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := dumpFile(t, path)
	for bucket, recs := range got {
		orig := base.dump[bucket]
		if rep.Txid != base.txid && bucket != "credentials" { // read from the older transaction (credentials: the keep file's)
			orig = base.olderDump[bucket]
		}
		n := 0
		for k, v := range recs {
			switch {
			case bucket == "meta" && (k == "schema" || k == "magic" || k == "corruptions" || k == "derived_seq"):
				continue
			case bucket == "audit" && orig[k] == "":
				continue // the quarantine's own record
			case bucket == "meta" && !rep.IdentityKept && (k == "install_id" || k == "secret" || k == "created"):
				continue // the new store's own identity
			case bucket == "meta" && k == "secret" && slices.Contains(rep.FromKeep, "identity"):
				continue // the keep file never holds the pseudonym key (sync/privacy keeps it in its own file)
			}
			// An event is never rewritten: one salvaged from a page of any
			// transaction must be, byte for byte, the event as it was written
			// (the older transaction may be well before the newest: the batch
			// behind the write-ahead log commits at checkpoints).
			wasWritten := base.written[k] == v || base.dump["events"][k] == v
			if orig[k] != v && !(bucket == "events" && orig[k] == "" && wasWritten) {
				t.Errorf("%s: salvaged %s %x differs from the original (or was not in it)", name, bucket, k)
			}
			n++
		}
		if bucket != "meta" && bucket != "audit" && n != rep.Buckets[bucket].Recovered {
			t.Errorf("%s: bucket %s holds %d records, the report says %d recovered", name, bucket, n, rep.Buckets[bucket].Recovered)
		}
	}
	if rep.IdentityKept != (installID == base.installID) {
		t.Errorf("%s: identity kept %v, but the install id is %s (was %s)", name, rep.IdentityKept, installID, base.installID)
	}
	var parts []string
	for _, b := range []string{"events", "credentials", "cursors", "rollups", "outbox"} {
		r := rep.Buckets[b]
		parts = append(parts, fmt.Sprintf("%s %d/%d", b, r.Recovered, len(base.dump[b])))
	}
	if !rep.IdentityKept {
		parts = append(parts, "identity lost")
	}
	if len(rep.FromKeep) > 0 {
		parts = append(parts, "keep file: "+strings.Join(rep.FromKeep, "+"))
	}
	if rep.Error != "" {
		parts = append(parts, "("+rep.Error+")")
	}
	return "· salvaged " + strings.Join(parts, ", ")
}

// damageFixture is the intact store the table damages, with what bbolt itself
// says of it.
type damageFixture struct {
	file      []byte
	keep      []byte // the keep file beside it (credentials and identity)
	pageSize  int
	hwm       int               // pages in use or free: the rest of the file is unused
	types     map[int]string    // bbolt's type of each page below hwm (tx.Page)
	special   []int             // the root page and every bucket's root page
	newerMeta int               // the meta page of the newest transaction
	dump      map[string]dumped // every record
	written   dumped            // every event ever written, retention's deletions included
	txid      uint64            // the newest transaction
	olderDump map[string]dumped // every record of the transaction before it (the other meta page)
	inUse     int
	installID string
}

type dumped = map[string]string

func pageType(base *damageFixture, p int) string {
	if p >= base.hwm {
		return "unused"
	}
	return base.types[p]
}

// damageBase writes the store: 20 devices through edge/ingest over 30 days, the
// rollup consumer over the log, age retention (which frees the oldest pages), more
// ingest (which reuses some of them), credentials, tags, a tag log and an outbox.
func damageBase(t *testing.T) *damageFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hearth.db")
	var clockNs atomic.Int64 // the store's goroutines read the clock too
	clockNs.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clockNs.Load()).UTC() }
	s, err := store.Open(path, &store.Options{Now: now, MaxAge: 20 * 24 * time.Hour, Protect: []string{rollupstage.CursorName}})
	if err != nil {
		t.Fatal(err)
	}
	in := ingest.New(s, &ingest.Options{Now: now})
	roll := rollupstage.NewConsumer(s, nil)
	ctx := context.Background()
	seqs := map[string]uint64{}
	kinds := []device.Kind{device.KindFridge, device.KindPlug, device.KindWasher, device.KindEntryDoor}
	day := func(d int) {
		for h := 0; h < 24; h++ {
			clockNs.Store(time.Date(2026, 1, 1+d, h, 0, 0, 0, time.UTC).UnixNano())
			clock := now()
			var rs []device.Reading
			for dev := range 14 {
				id := fmt.Sprintf("dev%02d", dev)
				for range 2 {
					seqs[id]++
					rs = append(rs, device.Reading{Device: id, Kind: kinds[dev%len(kinds)], Signal: device.SignalPower,
						Value: float64(seqs[id] % 1800), Unit: "W", Boot: 1, Seq: seqs[id], DeviceTime: clock})
				}
			}
			if err := device.Commit(ctx, in, rs); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := roll.CatchUp(); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 25 {
		day(d)
	}
	if err := s.Sync(); err != nil { // retention deletes only what a commit covers
		t.Fatal(err)
	}
	// Every event written, before retention deletes some: salvage may take one
	// back from a stale page when it cannot read how far retention went (meta
	// evicted_seq), and it must be that event, byte for byte.
	// (Read from a copy: the open store holds the file's lock. After Sync the
	// file is whole and nothing writes it until the next Update.)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "written.db")
	if err := os.WriteFile(copyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	written := dumpFile(t, copyPath)["events"]
	if n, err := s.Expire(now()); err != nil || n == 0 {
		t.Fatalf("Expire: %d, %v (the table needs pages freed in the middle)", n, err)
	}
	for d := 25; d < 30; d++ {
		day(d)
	}
	if err := s.Update(func(tx *store.Tx) error {
		for dev := range 20 {
			id := fmt.Sprintf("dev%02d", dev)
			if err := tx.Put(store.Credentials, []byte("device/"+id), fmt.Appendf(nil,
				`{"device":%q,"kind":"plug","salt":"%032x","hash":"%064x"}`, id, dev, dev*7919)); err != nil {
				return err
			}
		}
		for i := range 6 {
			if err := tx.Put(store.Tags, fmt.Appendf(nil, "tag%d", i), fmt.Appendf(nil, `{"name":"tag%d","score":0.%d,"active":true}`, i, i)); err != nil {
				return err
			}
			q, _ := tx.NextSeq(store.TagLog)
			if err := tx.Put(store.TagLog, store.Key(q), fmt.Appendf(nil, `{"tag":"tag%d","reason":"new"}`, i)); err != nil {
				return err
			}
		}
		for i := range 40 {
			q, _ := tx.NextSeq(store.Outbox)
			v := binary.BigEndian.AppendUint64(nil, uint64(now().UnixNano()))
			if err := tx.Put(store.Outbox, store.Key(q), fmt.Appendf(v, `{"type":"device_day","n":%d,"pad":%q}`, i, strings.Repeat("p", 300))); err != nil {
				return err
			}
		}
		return tx.SetCursor("sync.tags", 3)
	}); err != nil {
		t.Fatal(err)
	}
	base := &damageFixture{installID: s.InstallID(), written: written}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if base.file, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if base.keep, err = os.ReadFile(path + ".keep"); err != nil {
		t.Fatal(err)
	}
	// bbolt's own account of the intact file, on a copy.
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, base.file, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cp, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		t.Fatal(err)
	}
	base.pageSize = db.Info().PageSize
	base.types = map[int]string{}
	err = db.View(func(tx *bolt.Tx) error {
		base.hwm = int(tx.Size()) / base.pageSize
		for p := 0; p < base.hwm; p++ {
			info, err := tx.Page(p)
			if err != nil {
				return err
			}
			base.types[p] = info.Type
			if info.Type == "free" {
				continue // each free page is free on its own; its header is stale
			}
			for o := 1; o <= info.OverflowCount; o++ {
				base.types[p+o] = info.Type + " overflow"
			}
			p += info.OverflowCount
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if r := b.Root(); r != 0 {
				base.special = append(base.special, int(r))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The root page and the newest meta, from the meta pages (bbolt does not export them).
	var txid [2]uint64
	for m := range 2 {
		txid[m] = binary.LittleEndian.Uint64(base.file[m*base.pageSize+16+48:])
	}
	if txid[1] > txid[0] {
		base.newerMeta = 1
	}
	base.special = append(base.special, int(binary.LittleEndian.Uint64(base.file[base.newerMeta*base.pageSize+16+16:])))
	frees := 0
	for p := 2; p < base.hwm; p++ {
		switch {
		case base.types[p] != "free":
			base.inUse++
		case frees < 2: // damage on free pages, whatever the spread hits
			base.special = append(base.special, p)
			frees++
		}
	}
	base.dump = dumpFile(t, path)
	// The transaction before the newest, as bbolt reads it when the newest meta page
	// is unusable (salvage reads it when the newest root is unreadable).
	base.txid = max(txid[0], txid[1])
	older := bytes.Clone(base.file)
	clear(older[base.newerMeta*base.pageSize : (base.newerMeta+1)*base.pageSize])
	olderPath := filepath.Join(t.TempDir(), "older.db")
	if err := os.WriteFile(olderPath, older, 0o600); err != nil {
		t.Fatal(err)
	}
	base.olderDump = dumpFile(t, olderPath)
	types := map[string]int{}
	for _, typ := range base.types {
		types[typ]++
	}
	t.Logf("base store: %d bytes, %d pages below the high-water mark (%v), %d events", len(base.file), base.hwm, types, len(base.dump["events"]))
	if types["branch"] == 0 || types["free"] == 0 || len(base.file) < 2<<20 {
		t.Fatalf("the base store needs branch pages, free pages and a few MB: %v, %d bytes", types, len(base.file))
	}
	return base
}

// dumpFile reads every record of a closed store with bbolt.
func dumpFile(t *testing.T, path string) map[string]dumped {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]dumped{}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			recs := dumped{}
			out[string(name)] = recs
			return b.ForEach(func(k, v []byte) error { recs[string(k)] = string(v); return nil })
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func equalDumps(a, b map[string]dumped) bool {
	return maps.EqualFunc(a, b, func(x, y dumped) bool { return maps.Equal(x, y) })
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}
