package wal

import (
	"os"
	"syscall"
	"testing"
)

// refusingFS offers direct I/O at open, and its direct files refuse every write
// (EINVAL), as some network and FUSE file systems do.
type refusingFS struct{ osFS }

type refusingFile struct{ File }

func (refusingFile) isDirect() {}
func (refusingFile) WriteAt(p []byte, off int64) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "segment", Err: syscall.EINVAL}
}

func (r refusingFS) openDirect(name string) (File, int, error) {
	f, err := r.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	return refusingFile{f}, MinBlockSize, nil
}

// A file system that takes O_DIRECT at open but refuses the write: the segment is
// written through the page cache, in pages, and the log goes on.
func TestDirectRefusedFallsBackToThePageCache(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, &Options{FS: refusingFS{}, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range uint64(3) {
		if _, err := l.Append(1+i, 1, []byte("reading")); err != nil {
			t.Fatalf("append %d after direct I/O was refused: %v", i+1, err)
		}
	}
	if b := l.BlockSize(); b != PageSize {
		t.Fatalf("block size %d after direct I/O was refused, want %d (the page cache)", b, PageSize)
	}
	_ = l.Close()
	_, rec, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Entries() != 3 || rec.Damage != "" {
		t.Fatalf("read back %d entries (damage %q), want 3", rec.Entries(), rec.Damage)
	}
}
