package store

import (
	"fmt"
	"path/filepath"
)

// Room on the disk.
//
// A store restarted on a full disk opens (opening writes nothing new), and said it
// was ready until its first commit failed with ENOSPC and stopped intake. What a
// commit needs from the filesystem is known beforehand: bbolt grows its file with
// ftruncate, which allocates nothing, so the pages of the last growth step that no
// commit has written yet are holes the filesystem must still find blocks for; and
// once those are used, the next growth step (allocSize) — unless the file is
// already at its quota, after which commits only rewrite pages that have blocks.
// Space compares that with the free space of the filesystem, for /readyz and
// `hearth status`.

// DiskSpace is the room a store needs on its filesystem and the room there is.
type DiskSpace struct {
	Dir   string `json:"dir"`
	Free  int64  `json:"free_bytes"`  // available to hearth (statfs f_bavail)
	Holes int64  `json:"holes_bytes"` // bytes of the file the filesystem has not allocated yet
	Grow  int64  `json:"grow_bytes"`  // the next growth step, 0 at the quota
}

// Need is what the next commits may take from the filesystem.
func (d DiskSpace) Need() int64 { return d.Holes + d.Grow }

// Space returns nil when the store's filesystem has room for what its next commits
// may need (DiskSpace), and an error wrapping ErrDiskFull that says how much is
// missing when it has not. It stats the file and the filesystem; it writes nothing.
func (s *Store) Space() error {
	d, err := s.DiskSpace()
	if err != nil {
		return err
	}
	if d.Free < d.Need() {
		return fmt.Errorf("store: %w: %s has %d bytes free; the database needs %d (%d for pages its file holds but the disk has not allocated, %d for its next growth step)",
			ErrDiskFull, d.Dir, d.Free, d.Need(), d.Holes, d.Grow)
	}
	return nil
}

// DiskSpace measures the room the store needs and the room there is.
func (s *Store) DiskSpace() (DiskSpace, error) {
	d := DiskSpace{Dir: filepath.Dir(s.path)}
	size, allocated, err := fileBlocks(s.path)
	if err != nil {
		return d, fmt.Errorf("store: %s: %w", s.path, err)
	}
	d.Holes = max(size-allocated, 0)
	if step := int64(allocSize(s.opts)); size+step <= s.opts.QuotaBytes {
		d.Grow = step
	} else {
		d.Grow = max(s.opts.QuotaBytes-size, 0)
	}
	free := s.opts.FreeSpace
	if free == nil {
		free = freeSpace
	}
	if d.Free, err = free(d.Dir); err != nil {
		return d, fmt.Errorf("store: free space of %s: %w", d.Dir, err)
	}
	return d, nil
}
