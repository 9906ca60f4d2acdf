// Package fileperm checks that a file holding a secret (the admin token, the
// pseudonym key) is a regular file only its owner may read, with the error a person
// can act on.
package fileperm

import (
	"fmt"
	"io/fs"
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
