package wal

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync makes f's data durable with the metadata needed to read it back (its
// size), but not its timestamps: on a segment whose blocks were all written before
// (zero-filled or recycled), it writes the data pages and nothing else.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// dropCache drops f's clean pages from the page cache (posix_fadvise DONTNEED); an
// error only leaves them cached.
func dropCache(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }
