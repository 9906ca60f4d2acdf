package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
)

// writeSchema0 writes a store as the first hearth did (schema 0): no schema key in
// meta, and no taglog or credentials buckets yet.
func writeSchema0(t *testing.T, path string) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketEvents, bucketDedupe, bucketDevices, bucketCursors, bucketRollups, bucketState, bucketTags, bucketOutbox, bucketAudit} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		for k, v := range map[string]string{"magic": magic, "install_id": "0123456789abcdef0123456789abcdef",
			"secret": strings.Repeat("s", 32), "created": "2024-01-02T03:04:05Z"} {
			if err := meta.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		ev := tx.Bucket(bucketEvents)
		for q := uint64(1); q <= 3; q++ {
			r := reading("fridge1", 4, q, float64(q%2))
			if err := ev.Put(u64key(q), appendReading(nil, &r)); err != nil {
				return err
			}
		}
		w := &watermark{low: 3, used: 1}
		if err := tx.Bucket(bucketDedupe).Put(dedupeKey(bootKey{"fridge1", 4}), w.encode()); err != nil {
			return err
		}
		if err := tx.Bucket(bucketDevices).Put([]byte("fridge1"), []byte(`{"id":"fridge1","kind":"fridge","readings":3}`)); err != nil {
			return err
		}
		return tx.Bucket(bucketCursors).Put([]byte("rollup"), u64key(2))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateSchema0(t *testing.T) {
	fixture := filepath.Join("testdata", "schema0.db")
	if *update {
		_ = os.Remove(fixture)
		writeSchema0(t, fixture)
	}
	orig, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatalf("%v (run with -update to make it)", err)
	}
	path := filepath.Join(t.TempDir(), "hearth.db")
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	for start := 1; start <= 2; start++ {
		s := openTest(t, path, nil)
		if s.Recovered != "" {
			t.Fatalf("an old file was taken for corrupt: %s", s.Recovered)
		}
		if s.InstallID() != "0123456789abcdef0123456789abcdef" {
			t.Errorf("install id %q not kept", s.InstallID())
		}
		if want := uint64(2 + start); s.LastSeq() != want || len(readAll(t, s)) != int(want) {
			t.Errorf("start %d: events: last %d, %d read; want %d", start, s.LastSeq(), len(readAll(t, s)), want)
		}
		var migrations []string
		_ = s.View(func(tx *Tx) error {
			if c := tx.Cursor("rollup"); c != 2 {
				t.Errorf("cursor = %d, want 2", c)
			}
			if v := tx.tx.Bucket(bucketMeta).Get(keySchema); binary.BigEndian.Uint64(v) != SchemaVersion {
				t.Errorf("schema after open = %x, want %d", v, SchemaVersion)
			}
			return tx.ForEach(Audit, nil, func(_, v []byte) error {
				if bytes.Contains(v, []byte("schema_migrated")) {
					migrations = append(migrations, string(v))
				}
				return nil
			})
		})
		if len(migrations) != 1 || !strings.Contains(migrations[0], `"from":0`) {
			t.Errorf("start %d: audit of migrations = %q, want one from 0", start, migrations)
		}
		// The device record covered the whole log (schema ≤ 1 wrote it at every
		// commit): nothing is replayed into it at the migration.
		if start == 1 {
			if ds := s.Devices(); len(ds) != 1 || ds[0].Readings != 3 {
				t.Errorf("devices after the migration: %+v, want fridge1 with its 3 readings", ds)
			}
		}
		// The buckets schema 1 added work, and the dedupe state carried over.
		if err := s.Update(func(tx *Tx) error { return tx.Put(Credentials, []byte("dev"), []byte("hash")) }); err != nil {
			t.Fatal(err)
		}
		if err := commit(s, reading("fridge1", 4, 3, 1), reading("fridge1", 4, 4, 0)); err != nil {
			t.Fatal(err)
		}
		// Start 1: the 3 old events and seq 4 (seq 3 is a duplicate); start 2: both
		// are duplicates.
		if n := len(readAll(t, s)); n != 4 {
			t.Errorf("start %d: %d events, want 4", start, n)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

func commit(s *Store, rs ...device.Reading) error {
	ch := make(chan error, 1)
	s.Submit(rs, func(err error) { ch <- err })
	return <-ch
}

// A file written by a newer hearth is refused, named, and left as it was.
func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, u64key(SchemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	_, err := Open(path, &Options{Now: func() time.Time { return time.Now() }})
	if newer := fmt.Sprintf("schema %d", SchemaVersion+1); !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), newer) {
		t.Fatalf("err = %v, want ErrSchemaTooNew naming %s", err, newer)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a newer store was modified")
	}
}
