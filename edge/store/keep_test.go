package store

import (
	"path/filepath"
	"testing"

	"github.com/hearth-iot/hearth/device"
)

// The keep file holds a credential once the Update that put it has returned, also
// when the batch held other writes at the time, as in a running agent (cursors,
// rollups and readings applied since the last checkpoint). A durable Update then
// commits the batch first, without the credential, and the credential alone after
// it: the keep file must follow the second commit. (It followed the first, and the
// credential reached the keep file only at the next Open: a store damaged before
// that lost the device.)
func TestKeepFileFollowsEveryCredentialCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	defer s.Close()
	for _, c := range []struct {
		dev  string
		busy bool // the batch holds a write that waits for the checkpoint
	}{{"quiet-batch", false}, {"busy-batch", true}} {
		if c.busy {
			if err := s.Update(func(tx *Tx) error { return tx.SetCursor("test", 7) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Update(func(tx *Tx) error {
			return tx.PutCredential(&Credential{Device: c.dev, Kind: device.KindFridge, Hash: "h"})
		}); err != nil {
			t.Fatal(err)
		}
		k, err := readKeep(path + keepSuffix)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k.Credentials[credentialPrefix+c.dev]; !ok {
			t.Errorf("%s: the keep file lacks the credential just committed (it holds %d)", c.dev, len(k.Credentials))
		}
	}
}
