package wal_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hearth-iot/hearth/edge/store/wal"
)

// writeBytes is write_bytes of /proc/self/io: what the kernel accounts this process
// as having caused to be written to storage.
func writeBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err) // a kernel without task I/O accounting has nothing to measure
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no write_bytes in /proc/self/io")
	return 0
}

// TestKernelAccountsWhatTheLogWrites: appending a household's group and syncing it
// is accounted as about what the record takes, not as the large folio the kernel
// may cache a zero-filled segment in (osFile), nor, where the file system offers
// direct I/O in sectors, as the page a write through the page cache dirties
// (openDirect). Before page-sized writes and the dropped cache, on Linux 6.18 with
// ext4, 64 appends of a page to a 1 MB segment were accounted as 64 MB; through the
// page cache, 64 appends of 512 bytes are accounted as 64 pages (256 KB), direct as
// 32 KB.
func TestKernelAccountsWhatTheLogWrites(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, dir, &wal.Options{SegmentSize: 1 << 20})
	body := bytes.Repeat([]byte{'r'}, 1000)         // a household group: 1 KB of events
	if _, err := l.Append(1, 1, body); err != nil { // the first append zero-fills the segment
		t.Fatal(err)
	}
	block := l.BlockSize()
	before := writeBytes(t)
	const appends = 64
	var wrote int64
	for i := range appends {
		n, err := l.Append(uint64(2+i), 1, body)
		if err != nil {
			t.Fatal(err)
		}
		wrote += n
	}
	accounted := writeBytes(t) - before
	if want := appends * wal.RecordSize(len(body), block); wrote != want {
		t.Fatalf("the log says it wrote %d bytes for %d appends of %d bytes in blocks of %d, want %d", wrote, appends, len(body), block, want)
	}
	// Twice what the log wrote leaves room for the file system's own; the large
	// folios made it 256 times.
	if accounted > 2*wrote {
		t.Errorf("the kernel accounted %d bytes written for %d appends (%d bytes): %.1f× what the log wrote",
			accounted, appends, wrote, float64(accounted)/float64(wrote))
	}
	// Where the log writes in sectors (direct I/O), the kernel must not account the
	// pages a write through the page cache would have dirtied.
	if pages := int64(appends * wal.PageSize); block < wal.PageSize && accounted >= pages {
		t.Errorf("blocks of %d bytes: the kernel accounted %d bytes for %d appends, as many as %d pages", block, accounted, appends, appends)
	}
	t.Logf("blocks of %d bytes: the log wrote %d bytes; the kernel accounted %d", block, wrote, accounted)
}

// The log's block size is the file system's direct I/O unit where it offers one of
// at most a page, else a page: on the test's temporary directory (ext4 on the dev
// machine: 512) and on /dev/shm (tmpfs: no direct I/O unit, so pages).
func TestBlockSizeFollowsTheFileSystem(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "wal-test-"); err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(d) })
			dirs = append(dirs, d)
		}
	}
	for _, dir := range dirs {
		probe := filepath.Join(dir, "probe")
		if err := os.WriteFile(probe, make([]byte, wal.PageSize), 0o600); err != nil {
			t.Fatal(err)
		}
		want := int64(wal.PageSize)
		var st unix.Statx_t
		if unix.Statx(unix.AT_FDCWD, probe, 0, unix.STATX_DIOALIGN, &st) == nil && st.Mask&unix.STATX_DIOALIGN != 0 &&
			st.Dio_offset_align > 0 && st.Dio_offset_align <= wal.PageSize && st.Dio_mem_align > 0 {
			want = max(int64(st.Dio_offset_align), wal.MinBlockSize)
		}
		l, _ := openLog(t, filepath.Join(dir, "log"), &wal.Options{SegmentSize: 64 << 10})
		if _, err := l.Append(1, 1, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := l.BlockSize(); got != want {
			t.Errorf("%s: block size %d, want %d", dir, got, want)
		}
		t.Logf("%s: blocks of %d bytes", dir, l.BlockSize())
	}
}
