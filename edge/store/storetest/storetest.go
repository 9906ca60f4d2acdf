// Package storetest opens real stores for tests of the stages that use one.
package storetest

import (
	"errors"
	"path/filepath"
	"testing"

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
