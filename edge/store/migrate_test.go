package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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

// schema0SHA256 pins testdata/schema0.db: a fixture of an old layout is an input,
// never rewritten by today's code (a test that regenerated it from today's
// encoder would migrate a file the first hearth never wrote). It was made by
// testdata/schema0gen, which spells out every record byte for byte.
const schema0SHA256 = "c436d57e579528792040a33ffc66cb66eeee7c5257c74eba0da6de4d8feca6ab"

func TestMigrateSchema0(t *testing.T) {
	fixture := filepath.Join("testdata", "schema0.db")
	orig, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(orig); hex.EncodeToString(sum[:]) != schema0SHA256 {
		t.Fatalf("%s changed (sha256 %x): old-layout fixtures are immutable inputs; restore it from git", fixture, sum)
	}
	// It is the old layout: no schema key, neither taglog nor credentials.
	db, err := bolt.Open(fixture, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("taglog")) != nil || tx.Bucket([]byte("credentials")) != nil || tx.Bucket(bucketMeta).Get(keySchema) != nil {
			t.Errorf("%s is not a schema-0 file", fixture)
		}
		return nil
	})
	db.Close()
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
			return tx.forEach(Audit, nil, func(_, v []byte) error {
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
		if err := s.Update(func(tx *Tx) error { return tx.put(Credentials, []byte("dev"), []byte(`"hash"`)) }); err != nil {
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
