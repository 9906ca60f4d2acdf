package wal

import (
	"os"
	"sort"
)

// File is a segment file as the log uses it: positioned reads and writes, and Sync,
// which makes what was written durable (fdatasync on Linux: the data and the
// metadata needed to read it, not the timestamps).
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Close() error
}

// FS is the file system under the log: every durable write of the log goes
// through it, so that a test can put a file system under it that loses power
// (waltest.PowerFS). Names are paths as the os package takes them.
type FS interface {
	// OpenFile opens a file with os.OpenFile's flags.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Size is the size of the named file.
	Size(name string) (int64, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir returns the names of the files in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the directory's entries (creations, renames, removals) durable.
	SyncDir(dir string) error
}

// OS is the operating system's file system.
func OS() FS { return osFS{} }

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Size(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (osFS) Rename(a, b string) error                    { return os.Rename(a, b) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

func (osFS) ReadDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(es))
	for _, e := range es {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// osFile is an *os.File whose Sync is fdatasync where the platform has it
// (sync_linux.go), and which keeps each page of a segment in a page-cache folio of
// its own (WriteAt, dropCache).
//
// Why: Linux (ext4 since 6.16, XFS before) caches a file in large folios — up to
// megabytes — when it is written or read ahead in large pieces, and it accounts a
// folio's whole size each time a write makes a clean folio dirty. Appending a 4 KB
// record to a zero-filled segment cached that way, then fdatasync, counted 1 MB in
// /proc/PID/io write_bytes per append (measured on 6.18: 50 appends, 52 MB counted,
// 0.4 MB reaching the device). The device writes only the dirty blocks, but the
// kernel's account — what a maker measures the hub's flash wear with — and the page
// cache's dirty-page throttling both see the folio. Page-sized writes, and dropping
// the cache of what was written or read in bulk, keep the account at what the log
// writes.
type osFile struct{ *os.File }

func (f osFile) Sync() error { return fdatasync(f.File) }

// WriteAt writes p at off one page at a time (see osFile).
func (f osFile) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k := min(len(p)-n, PageSize-int((off+int64(n))%PageSize))
		w, err := f.File.WriteAt(p[n:n+k], off+int64(n))
		n += w
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (f osFile) dropCache() { dropCache(f.File) }

// dropCached asks the kernel to drop f's clean cached pages, if f is a real file
// (see osFile): after a segment was zero-filled or read whole.
func dropCached(f File) {
	if d, ok := f.(interface{ dropCache() }); ok {
		d.dropCache()
	}
}
