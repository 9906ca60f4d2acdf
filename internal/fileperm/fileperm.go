// Package fileperm checks that a file holding a secret (the admin token, the
// pseudonym key) is a regular file only its owner may read, with the error a person
// can act on.
package fileperm

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// OwnerOnly returns an error naming path if fi is not a regular file or if its group
// or others may read, write or run it; nil otherwise.
func OwnerOnly(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is open to group or others (mode %04o); only its owner may read it: run `chmod 600 %s`",
			path, perm, path)
	}
	return nil
}

// WritePrivate replaces the file at path with data, mode 0600, atomically: data goes
// to a temporary file beside it, synced before the rename, so that a crash leaves the
// old content or the new, never a part. The rename is made durable by syncing the
// directory, best effort (some file systems cannot).
func WritePrivate(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync() // the content is on disk before the name points at it
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
