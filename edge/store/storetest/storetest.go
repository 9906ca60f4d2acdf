// Package storetest opens real stores for tests of the stages that use one.
package storetest

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/edge/store"
)

// Open opens a store in t.TempDir(). Its cleanup checks the file (store.Check: the
// page structure, event keys and dedupe records) and closes it, failing the test if
// the check fails. o may be nil.
func Open(t testing.TB, o *store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "hearth.db"), o)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("storetest: store left inconsistent: %v", err)
		}
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("storetest: close: %v", err)
		}
	})
	return s
}

// PutRaw writes a raw record into bucket of the closed store file at path, with
// bbolt itself and no check: how a test makes a record the store's typed views
// cannot read (one a damaged page or a bug would leave), to see it quarantined.
func PutRaw(t testing.TB, path, bucket string, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("no bucket %q", bucket)
		}
		return b.Put(key, value)
	}); err != nil {
		t.Fatalf("storetest: %v", err)
	}
}
