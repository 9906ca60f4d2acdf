package store

import (
	"os"
	"path/filepath"
	"testing"
)

// A crash during salvage leaves either the damaged file and a partial new store
// (deleted: Open salvages again) or, after the damaged file was moved aside, a
// complete new store beside no file at all (moved into place). A complete one
// beside a file is stale and deleted.
func TestSalvageInterruptedByACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	s := openTest(t, path, nil)
	if err := commit(s, reading("fridge1", 1, 1, 1), reading("fridge1", 1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	id := s.InstallID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The damaged file moved aside, the complete new store not yet in place.
	if err := os.Rename(path, path+salvageSuffix); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+salvagePartialSuffix, []byte("half a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, nil)
	if s.InstallID() != id || s.LastSeq() != 2 || s.Recovered != "" {
		t.Errorf("the complete salvage was not taken into place: install %s (want %s), last seq %d, recovered %q", s.InstallID(), id, s.LastSeq(), s.Recovered)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, leftover := range []string{path + salvageSuffix, path + salvagePartialSuffix} {
		if _, err := os.Stat(leftover); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", leftover, err)
		}
	}

	// A stale complete salvage beside the file: deleted, the file untouched.
	if err := os.WriteFile(path+salvageSuffix, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, nil)
	if s.LastSeq() != 2 || s.InstallID() != id || s.Recovered != "" {
		t.Errorf("the store beside a stale salvage: last seq %d (want 2), install %s (want %s), recovered %q", s.LastSeq(), s.InstallID(), id, s.Recovered)
	}
	s.Close()
	if _, err := os.Stat(path + salvageSuffix); !os.IsNotExist(err) {
		t.Errorf("stale salvage left behind (%v)", err)
	}
}
