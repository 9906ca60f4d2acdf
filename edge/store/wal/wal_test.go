package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/edge/store/wal"
	"github.com/hearth-iot/hearth/edge/store/wal/waltest"
)

// body is the test's record body for entries first..first+n-1: each entry's sequence
// as text, so a record read back can be checked against its header.
func body(first uint64, n int, pad int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, "%d;", first+uint64(i))
	}
	return append(b, bytes.Repeat([]byte{'.'}, pad)...)
}

func checkBody(t *testing.T, r wal.Record) {
	t.Helper()
	want := body(r.First, r.N, 0)
	if !bytes.HasPrefix(r.Body, want) {
		t.Fatalf("record %d+%d: body %.40q does not match its header", r.First, r.N, r.Body)
	}
}

func openLog(t *testing.T, dir string, o *wal.Options) (*wal.Log, *wal.Recovery) {
	t.Helper()
	l, rec, err := wal.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, rec
}

// appendN appends records of k entries each from sequence first on; it returns the
// next sequence.
func appendN(t *testing.T, l *wal.Log, first uint64, records, k, pad int) uint64 {
	t.Helper()
	for range records {
		if _, err := l.Append(first, k, body(first, k, pad)); err != nil {
			t.Fatal(err)
		}
		first += uint64(k)
	}
	return first
}

func seqs(rs []wal.Record) (first, last uint64, n int) {
	for i, r := range rs {
		if i == 0 {
			first = r.First
		}
		last = r.Last()
		n += r.N
	}
	return first, last, n
}

func TestAppendAndReopen(t *testing.T) {
	dir := t.TempDir()
	l, rec := openLog(t, dir, &wal.Options{SegmentSize: 64 << 10})
	if len(rec.Records) != 0 || rec.Damage != "" || rec.Torn != nil {
		t.Fatalf("a new log: %+v", rec)
	}
	// Records of 3 entries and ~8 KB: several segments of 16 pages.
	next := appendN(t, l, 1, 20, 3, 8000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, rec = openLog(t, dir, &wal.Options{SegmentSize: 64 << 10})
	first, last, n := seqs(rec.Records)
	if first != 1 || last != next-1 || n != 60 || rec.Damage != "" || rec.Torn != nil {
		t.Fatalf("reopened: sequences %d..%d (%d entries), damage %q, torn %v; want 1..60", first, last, n, rec.Damage, rec.Torn)
	}
	if rec.Segments < 3 {
		t.Fatalf("%d segments: the test wants records across several", rec.Segments)
	}
	for _, r := range rec.Records {
		checkBody(t, r)
	}
}

// Every record starts at a block boundary: a record appended after another never
// rewrites the block that holds it (a torn write could otherwise destroy it).
func TestRecordsAreBlockAligned(t *testing.T) {
	for _, block := range []int{wal.PageSize, wal.MinBlockSize} {
		fsys := waltest.NewPowerFS(1)
		l, _ := openLog(t, "/log", &wal.Options{FS: fsys, SegmentSize: 64 << 10, BlockSize: block})
		var wrote []int64
		for i := range uint64(3) {
			n, err := l.Append(1+i, 1, body(1+i, 1, 10))
			if err != nil {
				t.Fatal(err)
			}
			wrote = append(wrote, n)
		}
		// The first append also made the segment: its zero fill and header page.
		b64 := int64(block)
		if wrote[0] != 64<<10+wal.PageSize+b64 || wrote[1] != b64 || wrote[2] != b64 {
			t.Fatalf("blocks of %d: bytes written per append %v, want [%d %d %d]", block, wrote, 64<<10+wal.PageSize+b64, b64, b64)
		}
		b, err := fsys.ReadFile("/log/0000000000000001.log")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			off := wal.PageSize + i*block
			if !bytes.Contains(b[off:off+block], body(uint64(1+i), 1, 0)) {
				t.Fatalf("blocks of %d: record %d is not at offset %d", block, i+1, off)
			}
		}
		_ = l.Close()
	}
}

// damage returns the path of the segment of dir holding sequence seq, and the
// offset of the record holding it.
func locate(t *testing.T, dir string, seq uint64) (string, int64) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, path := range names {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(wal.PageSize); off+wal.RecordHeaderSize <= int64(len(b)); off += wal.MinBlockSize {
			if bytes.HasPrefix(b[off+wal.RecordHeaderSize:], body(seq, 1, 0)) {
				return path, off
			}
		}
	}
	t.Fatalf("sequence %d not found in %s", seq, dir)
	return "", 0
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// The recovery rules, one damage at a time, on a log of 40 records of one entry
// (sequences 1..40) over three segments of per records: records of a page (15 per
// segment of 16 pages) and records of 7 sectors (17 per segment), which start at
// sector boundaries within pages.
func TestRecoveryRules(t *testing.T) {
	for _, layout := range []struct {
		block    int
		pad, per int
	}{{wal.PageSize, 100, 15}, {wal.MinBlockSize, 3500, 17}} {
		t.Run(fmt.Sprintf("block %d", layout.block), func(t *testing.T) {
			opts := &wal.Options{SegmentSize: 16 * wal.PageSize, BlockSize: layout.block}
			if got := (16*wal.PageSize - wal.PageSize) / int(wal.RecordSize(len(body(10, 1, layout.pad)), int64(layout.block))); got != layout.per {
				t.Fatalf("%d records per segment, the cases want %d", got, layout.per)
			}
			recoveryRules(t, opts, layout.pad, uint64(layout.per))
		})
	}
}

func recoveryRules(t *testing.T, opts *wal.Options, pad int, per uint64) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// want: the valid prefix ends at last; torn tail or not; damage or not;
		// and the records counted after the damage.
		last        uint64
		torn        bool
		damaged     string
		afterFirst  uint64
		afterRecord int
	}{
		{name: "intact", damage: func(*testing.T, string) {}, last: 40},
		{name: "torn last record", damage: func(t *testing.T, dir string) {
			path, off := locate(t, dir, 40)
			flip(t, path, off+wal.RecordHeaderSize+1)
		}, last: 39, torn: true},
		{name: "torn header of the last record", damage: func(t *testing.T, dir string) {
			path, off := locate(t, dir, 40)
			flip(t, path, off+4) // its length
		}, last: 39, torn: true},
		{name: "checksum failure mid-segment", damage: func(t *testing.T, dir string) {
			path, off := locate(t, dir, 5)
			flip(t, path, off+wal.RecordHeaderSize)
		}, last: 4, damaged: "fails its checksum", afterFirst: 6, afterRecord: 35},
		{name: "segment index of a record mid-segment", damage: func(t *testing.T, dir string) {
			path, off := locate(t, dir, 5)
			flip(t, path, off+8+7) // the record looks like one left from the file's earlier use
		}, last: 4, damaged: "header of the record", afterFirst: 6, afterRecord: 35},
		{name: "checksum failure in the last record of a full segment", damage: func(t *testing.T, dir string) {
			path, off := locate(t, dir, per)
			flip(t, path, off+wal.RecordHeaderSize)
		}, last: per - 1, damaged: "fails its checksum", afterFirst: per + 1, afterRecord: 40 - int(per)},
		{name: "missing segment", damage: func(t *testing.T, dir string) {
			path, _ := locate(t, dir, 20)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, last: per, damaged: "missing", afterFirst: 2*per + 1, afterRecord: 40 - 2*int(per)},
		{name: "missing first segment", damage: func(t *testing.T, dir string) {
			path, _ := locate(t, dir, 1)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, last: 40}, // the log alone cannot tell: the store checks its first sequence against the database
		{name: "segment header", damage: func(t *testing.T, dir string) {
			path, _ := locate(t, dir, 20)
			flip(t, path, 17)
		}, last: per, damaged: "header", afterFirst: 2*per + 1, afterRecord: 40 - 2*int(per)},
		{name: "truncated segment", damage: func(t *testing.T, dir string) {
			path, off := locate(t, dir, 35)
			if err := os.Truncate(path, off+100); err != nil {
				t.Fatal(err)
			}
		}, last: 34, torn: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := openLog(t, dir, opts)
			appendN(t, l, 1, 40, 1, pad)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			c.damage(t, dir)
			_, rec := openLog(t, dir, opts)
			_, last, _ := seqs(rec.Records)
			if last != c.last || (rec.Torn != nil) != c.torn {
				t.Fatalf("valid prefix to %d, torn %v; want to %d, torn %v (damage %q)", last, rec.Torn, c.last, c.torn, rec.Damage)
			}
			if (rec.Damage != "") != (c.damaged != "") || !strings.Contains(rec.Damage, c.damaged) {
				t.Fatalf("damage %q, want one saying %q", rec.Damage, c.damaged)
			}
			if c.damaged != "" && (rec.After.Records != c.afterRecord || rec.After.First != c.afterFirst) {
				t.Fatalf("after the damage: %+v, want %d records from %d", rec.After, c.afterRecord, c.afterFirst)
			}
			for _, r := range rec.Records {
				checkBody(t, r)
			}
		})
	}
}

// Released segments are reused: their old records (of an earlier segment index)
// are never read as the new segment's, and the log keeps its order.
func TestReleasedSegmentsReused(t *testing.T) {
	dir := t.TempDir()
	opts := &wal.Options{SegmentSize: 16 * wal.PageSize, MaxSegments: 3, Spares: 1}
	l, _ := openLog(t, dir, opts)
	next := uint64(1)
	for range 10 { // 10 × 20 records: 14 segments through a pool of 3 live + 1 spare
		for range 20 {
			_, err := l.Append(next, 1, body(next, 1, 100))
			if errors.Is(err, wal.ErrFull) {
				if _, err := l.Release(next - 1); err != nil {
					t.Fatal(err)
				}
				_, err = l.Append(next, 1, body(next, 1, 100))
			}
			if err != nil {
				t.Fatal(err)
			}
			next++
		}
		if l.Live() > 3 {
			t.Fatalf("%d live segments, at most 3", l.Live())
		}
	}
	if _, err := l.Release(next - 10); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) > 4 {
		t.Fatalf("%d files in the log directory, want at most 3 segments and a spare: %v", len(files), files)
	}
	_, rec := openLog(t, dir, opts)
	first, last, _ := seqs(rec.Records)
	if last != next-1 || first > next-10 || rec.Damage != "" || rec.Torn != nil {
		t.Fatalf("after reuse: %d..%d, damage %q, torn %v; want the records from before %d to %d", first, last, rec.Damage, rec.Torn, next-10, next-1)
	}
	for _, r := range rec.Records {
		checkBody(t, r)
	}
}

// SetAside moves the segments read at Open into another directory, untouched.
func TestSetAside(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, dir, nil)
	appendN(t, l, 1, 3, 2, 10)
	_ = l.Close()
	l, rec := openLog(t, dir, nil)
	if len(rec.Records) != 3 {
		t.Fatalf("%d records", len(rec.Records))
	}
	aside := dir + ".corrupt"
	if n, err := l.SetAside(aside); err != nil || n != 1 {
		t.Fatalf("SetAside = %d, %v; want the one segment", n, err)
	}
	appendN(t, l, 7, 1, 1, 10)
	_ = l.Close()
	_, rec = openLog(t, dir, nil)
	if first, last, _ := seqs(rec.Records); first != 7 || last != 7 {
		t.Fatalf("after SetAside and one append: %d..%d, want 7..7", first, last)
	}
	_, rec = openLog(t, aside, nil)
	if first, last, _ := seqs(rec.Records); first != 1 || last != 6 {
		t.Fatalf("the log set aside: %d..%d, want 1..6", first, last)
	}
}

// Power cuts at random moments of appending, releasing and starting segments: every
// record whose Append returned is there after the cut, in order, and the log is
// never taken for damaged (a torn tail is not damage).
func TestPowerCuts(t *testing.T) {
	cuts := 300
	if testing.Short() {
		cuts = 60
	}
	for seed := range uint64(cuts) {
		fsys := waltest.NewPowerFS(seed)
		rng := rand.New(rand.NewPCG(seed, 7))
		opts := &wal.Options{FS: fsys, SegmentSize: 16 * wal.PageSize, MaxSegments: 3, Spares: 1,
			BlockSize: []int{wal.PageSize, wal.MinBlockSize}[seed%2]}
		var acked uint64    // every sequence up to it was acknowledged
		var released uint64 // and every one up to this released (applied elsewhere)
		next := uint64(1)
		for round := range 3 {
			l, rec, err := wal.Open("/log", opts)
			if err != nil {
				t.Fatalf("seed %d round %d: %v", seed, round, err)
			}
			if rec.Damage != "" {
				t.Fatalf("seed %d round %d: the log taken for damaged after a power cut: %s", seed, round, rec.Damage)
			}
			first, last, _ := seqs(rec.Records)
			if acked > released && (last < acked || first > released+1) {
				t.Fatalf("seed %d round %d: the log holds %d..%d; %d..%d were acknowledged and not released", seed, round, first, last, released+1, acked)
			}
			for i := 1; i < len(rec.Records); i++ {
				if rec.Records[i].First != rec.Records[i-1].Last()+1 {
					t.Fatalf("seed %d: records out of order", seed)
				}
			}
			for _, r := range rec.Records {
				checkBody(t, r)
			}
			next = max(next, last+1)
			fsys.CutAfter(1 + rng.IntN(60))
			for !fsys.Off() {
				k := 1 + rng.IntN(4)
				_, err := l.Append(next, k, body(next, k, rng.IntN(3*wal.PageSize)))
				if errors.Is(err, wal.ErrFull) {
					released = next - 1 // as if applied elsewhere: no longer needed, whatever Release says
					_, _ = l.Release(released)
					continue
				}
				if err != nil {
					break
				}
				acked = next + uint64(k) - 1
				next += uint64(k)
			}
			_ = l.Close()
			fsys.Restart()
		}
	}
}

// Prepare makes the first segment ready at Open: the first Append then writes its
// header page and record, not a segment of zeros, and a second Prepare does nothing.
func TestPrepareReadiesTheFirstSegment(t *testing.T) {
	const size = 64 << 10
	l, _ := openLog(t, t.TempDir(), &wal.Options{SegmentSize: size})
	wrote, err := l.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if wrote != size {
		t.Fatalf("Prepare wrote %d bytes, want a segment of zeros (%d)", wrote, size)
	}
	if again, err := l.Prepare(); err != nil || again != 0 {
		t.Fatalf("a second Prepare wrote %d bytes (%v), want none: a spare is ready", again, err)
	}
	n, err := l.Append(1, 1, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if want := wal.PageSize + l.RecordSize(1); n != want {
		t.Errorf("the first Append after Prepare wrote %d bytes, want %d (a header page and the record)", n, want)
	}
}

// A log written in pages (by a hearth before sector blocks, or a file system without
// direct I/O) is read, and appended to in the default blocks, in one order.
func TestSegmentsOfEitherBlockSize(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, dir, &wal.Options{SegmentSize: 16 * wal.PageSize, BlockSize: wal.PageSize})
	next := appendN(t, l, 1, 20, 1, 100) // 15 a segment: two segments of page records
	_ = l.Close()
	l, rec := openLog(t, dir, &wal.Options{SegmentSize: 16 * wal.PageSize, BlockSize: wal.MinBlockSize})
	if _, last, _ := seqs(rec.Records); last != next-1 {
		t.Fatalf("page records read back to %d, want %d", last, next-1)
	}
	next = appendN(t, l, next, 20, 1, 100)
	if b := l.BlockSize(); b != wal.MinBlockSize {
		t.Fatalf("the new segment's block size %d, want %d", b, wal.MinBlockSize)
	}
	_ = l.Close()
	_, rec = openLog(t, dir, nil)
	first, last, n := seqs(rec.Records)
	if first != 1 || last != next-1 || n != 40 || rec.Damage != "" || rec.Torn != nil {
		t.Fatalf("pages then sectors: %d..%d (%d), damage %q, torn %v; want 1..40", first, last, n, rec.Damage, rec.Torn)
	}
	for _, r := range rec.Records {
		checkBody(t, r)
	}
}
