package wal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// PageSize is the size of a segment's header, and the unit of the log's records
// where the file system offers no direct I/O in smaller blocks (Options.BlockSize).
const PageSize = 4096

// MinBlockSize is the smallest unit of records: a disk sector.
const MinBlockSize = 512

// RecordHeaderSize is the size of a record's header (FORMAT.md, "The write-ahead log").
const RecordHeaderSize = 32

const (
	segMagic      = "hearthlg"
	formatVersion = 1
	recEntries    = 1 // the only record type: a group of entries with consecutive sequences
	segSuffix     = ".log"
	spareSuffix   = ".spare"
	tmpSuffix     = ".tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the log.
var (
	// ErrTooLarge: a record would not fit in one segment.
	ErrTooLarge = errors.New("wal: record larger than a segment")
	// ErrFull: every segment the log may keep holds records not yet released; the
	// caller releases some (after applying them) and appends again.
	ErrFull = errors.New("wal: no segment free until records are released")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
)

// Options tune a Log. The zero value of each field means its documented default.
type Options struct {
	// FS is the file system under the log (default: the operating system's).
	FS FS
	// SegmentSize is the size of a segment file, a multiple of PageSize of at least
	// 16 pages (default 1 MiB). A record never spans segments: the largest record
	// is a segment less its header page.
	SegmentSize int64
	// MaxSegments is the most segments holding records not yet released (default 4).
	MaxSegments int
	// Spares is how many released segments are kept, renamed, for reuse (default 2):
	// a reused segment's blocks are already written, so writing into it changes no
	// file metadata (the file system journals nothing at its fdatasync).
	Spares int
	// BlockSize is the unit of records (a power of two from MinBlockSize to
	// PageSize): every record starts at a block boundary and is padded to the next
	// one, so a write never touches a block that holds an earlier, acknowledged
	// record. 0 (default): the file system's direct I/O unit where it offers direct
	// I/O (O_DIRECT, Linux: 512 bytes on most devices), so that a group commit of a
	// few readings writes a sector, not a page; else PageSize, through the page
	// cache. A segment's header records its block size.
	BlockSize int
	// Logger receives the log's logs; nil discards them.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.FS == nil {
		v.FS = OS()
	}
	if v.SegmentSize <= 0 {
		v.SegmentSize = 1 << 20
	}
	v.SegmentSize = max(v.SegmentSize/PageSize*PageSize, 16*PageSize)
	if v.MaxSegments <= 0 {
		v.MaxSegments = 4
	}
	if v.Spares <= 0 {
		v.Spares = 2
	}
	if v.BlockSize != 0 && !validBlock(v.BlockSize) {
		v.BlockSize = PageSize
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	return v
}

// validBlock reports whether b can be a segment's block size.
func validBlock(b int) bool { return b >= MinBlockSize && b <= PageSize && b&(b-1) == 0 }

// Log is the write-ahead log: a directory of preallocated segment files, each a
// header page and then records, each record a group of entries with consecutive
// sequence numbers, checksummed and page-aligned. One goroutine appends; Release
// may be called from another.
type Log struct {
	dir  string
	opts Options
	fs   FS

	mu      sync.Mutex
	live    []*segment // segments holding records not yet released, oldest first; the active one last
	active  *segment   // the segment appended to, or nil until the first Append
	off     int64      // where the next record goes in active
	spares  []string   // file names of spare segments, ready to reuse
	next    uint64     // index of the next segment
	failed  error      // a write or sync failed: nothing more is written
	closed  bool
	buf     []byte
	written int64 // bytes written through the FS since Open (records, headers, zero fill)
}

type segment struct {
	index       uint64
	name        string
	f           File
	block       int64  // its records' unit (its header says)
	first, last uint64 // sequences of its first and last entry (0, 0: no record yet)
}

func segName(index uint64) string   { return fmt.Sprintf("%016x%s", index, segSuffix) }
func spareName(index uint64) string { return fmt.Sprintf("%016x%s", index, spareSuffix) }

// parseName returns the index in a segment's or a spare's file name.
func parseName(name, suffix string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, suffix)
	if !ok || len(base) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 16, 64)
	return n, err == nil
}

// Open opens the log in dir (creating it), reads every segment and returns what it
// holds: the records of its valid prefix, where a torn tail was cut, and any
// damage (Recovery). It never fails on damage: the caller applies the valid prefix,
// reports the rest, and may SetAside the damaged segments. Appends go to a new
// segment; the segments read stay until Release or SetAside.
func Open(dir string, o *Options) (*Log, *Recovery, error) {
	opts := o.withDefaults()
	l := &Log{dir: dir, opts: opts, fs: opts.FS, next: 1}
	if err := l.fs.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	names, err := l.fs.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: read %s: %w", dir, err)
	}
	var segs []uint64
	for _, n := range names {
		if i, ok := parseName(n, segSuffix); ok {
			segs = append(segs, i)
			l.next = max(l.next, i+1)
		} else if i, ok := parseName(n, spareSuffix); ok {
			l.spares = append(l.spares, n)
			l.next = max(l.next, i+1)
		} else if strings.HasSuffix(n, tmpSuffix) { // a spare whose zero fill a crash interrupted
			_ = l.fs.Remove(filepath.Join(dir, n))
		}
	}
	slices.Sort(segs)
	rec, err := l.recover(segs)
	if err != nil {
		l.closeFiles()
		return nil, nil, err
	}
	return l, rec, nil
}

// Prepare makes a spare segment ready when the log has neither one nor an active
// segment, so that the first Append after Open writes its record and a header, not a
// whole segment of zeros (the store calls it at Open). It returns the bytes written.
func (l *Log) Prepare() (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return 0, ErrClosed
	case l.failed != nil:
		return 0, l.failed
	case l.active != nil || len(l.spares) > 0 || len(l.live) >= l.opts.MaxSegments:
		return 0, nil
	}
	index := l.next
	tmp := filepath.Join(l.dir, fmt.Sprintf("%016x%s", index, tmpSuffix))
	f, wrote, err := l.zeroFilled(tmp)
	if err != nil {
		_ = l.fs.Remove(tmp)
		return wrote, err
	}
	_ = f.Close()
	name := spareName(index)
	if err := l.fs.Rename(tmp, filepath.Join(l.dir, name)); err != nil {
		_ = l.fs.Remove(tmp)
		return wrote, fmt.Errorf("wal: rename %s to %s: %w", tmp, name, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return wrote, fmt.Errorf("wal: sync %s: %w", l.dir, err)
	}
	l.next++
	l.spares = append(l.spares, name)
	return wrote, nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// SegmentSize is the size of each segment file.
func (l *Log) SegmentSize() int64 { return l.opts.SegmentSize }

// MaxRecord is the largest body an Append takes.
func (l *Log) MaxRecord() int { return int(l.opts.SegmentSize) - PageSize - RecordHeaderSize }

// Written is the number of bytes the log has written since Open: records with their
// padding, segment headers and the zero fill of new segments.
func (l *Log) Written() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

// Live is the number of segments holding records not yet released.
func (l *Log) Live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

// RecordSize is what a record of a body of n bytes takes in a segment of the given
// block size (and writes): its header and body, padded to whole blocks.
func RecordSize(n int, block int64) int64 {
	return (int64(RecordHeaderSize+n) + block - 1) / block * block
}

// BlockSize is the block size of the segment the log appends to (the one the next
// Append goes to when it starts a new segment may differ only if direct I/O fails
// there), or Options.BlockSize (0: not known until the first Append).
func (l *Log) BlockSize() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active != nil {
		return l.active.block
	}
	return int64(l.opts.BlockSize)
}

// RecordSize is what a record of a body of n bytes takes in the active segment.
func (l *Log) RecordSize(n int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == nil {
		return RecordSize(n, PageSize)
	}
	return RecordSize(n, l.active.block)
}

// Append writes one record — n entries, the first with sequence first, the rest
// following it — and makes it durable (fdatasync) before it returns. It returns
// the bytes it wrote. After a failed write or sync every later Append fails: the
// page cache and the file may disagree, and retrying a failed fsync can report
// success for data that was lost.
func (l *Log) Append(first uint64, n int, body []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return 0, ErrClosed
	case l.failed != nil:
		return 0, l.failed
	case len(body) > l.MaxRecord():
		return 0, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(body), l.MaxRecord())
	case n <= 0 || first == 0:
		return 0, fmt.Errorf("wal: a record of %d entries from sequence %d", n, first)
	}
	var wrote int64
	if l.active == nil || l.off+RecordSize(len(body), l.active.block) > l.opts.SegmentSize {
		w, err := l.startSegment()
		wrote += w
		if err != nil {
			return wrote, err
		}
	}
	size := RecordSize(len(body), l.active.block)
	l.buf = slices.Grow(l.buf[:0], int(size))[:size]
	encodeRecord(l.buf, l.active.index, first, n, body)
	if _, err := l.active.f.WriteAt(l.buf, l.off); err != nil {
		return wrote, l.fail(fmt.Errorf("wal: write %s: %w", l.active.name, err))
	}
	wrote += size
	l.written += size
	if err := l.active.f.Sync(); err != nil {
		return wrote, l.fail(fmt.Errorf("wal: sync %s: %w", l.active.name, err))
	}
	l.off += size
	if l.active.first == 0 {
		l.active.first = first
	}
	l.active.last = first + uint64(n) - 1
	return wrote, nil
}

// encodeRecord writes a record into b, which is RecordSize(len(body), block) long.
func encodeRecord(b []byte, seg, first uint64, n int, body []byte) {
	binary.BigEndian.PutUint32(b[4:], uint32(len(body)))
	binary.BigEndian.PutUint64(b[8:], seg)
	binary.BigEndian.PutUint64(b[16:], first)
	binary.BigEndian.PutUint32(b[24:], uint32(n))
	b[28] = recEntries
	clear(b[29:RecordHeaderSize])
	copy(b[RecordHeaderSize:], body)
	clear(b[RecordHeaderSize+len(body):])
	binary.BigEndian.PutUint32(b[0:], crc32.Checksum(b[4:RecordHeaderSize+len(body)], castagnoli))
}

func (l *Log) fail(err error) error {
	l.failed = err
	l.opts.Logger.Error("write-ahead log write failed: nothing more is written to it", "component", "wal", "err", err)
	return err
}

// startSegment makes a new active segment: a spare (or a new zero-filled file) with
// a new header, synced, then renamed to its segment name, and the directory synced,
// before any record is written to it. l.mu is held.
func (l *Log) startSegment() (int64, error) {
	if len(l.live) >= l.opts.MaxSegments && (l.active == nil || len(l.live) >= l.opts.MaxSegments) {
		return 0, ErrFull
	}
	var wrote int64
	var src string
	var f File
	var err error
	if k := len(l.spares); k > 0 {
		src = filepath.Join(l.dir, l.spares[k-1])
		f, err = l.fs.OpenFile(src, os.O_RDWR, 0)
		if err != nil { // an unusable spare: drop it, make a new one
			_ = l.fs.Remove(src)
		} else if sz, serr := l.fs.Size(src); serr != nil || sz != l.opts.SegmentSize {
			_ = f.Close()
			_ = l.fs.Remove(src)
			f = nil
		}
		l.spares = l.spares[:k-1]
	}
	if f == nil {
		src = filepath.Join(l.dir, fmt.Sprintf("%016x%s", l.next, tmpSuffix))
		f, wrote, err = l.zeroFilled(src)
		if err != nil {
			return wrote, l.fail(err)
		}
	}
	index := l.next
	name := segName(index)
	f, block, err := l.forAppend(f, src)
	if err != nil {
		return wrote, l.fail(err)
	}
	hdr := make([]byte, PageSize)
	encodeHeader(hdr, index, l.opts.SegmentSize, block)
	_, err = f.WriteAt(hdr, 0)
	if _, direct := f.(interface{ isDirect() }); direct && errors.Is(err, syscall.EINVAL) {
		// The file system took O_DIRECT at open but refuses the write (some network
		// and FUSE file systems): write this segment through the page cache.
		l.opts.Logger.Warn("write-ahead log: direct I/O refused, writing through the page cache",
			"component", "wal", "segment", name, "err", err)
		_ = f.Close()
		if f, err = l.fs.OpenFile(src, os.O_RDWR, 0); err != nil {
			return wrote, l.fail(fmt.Errorf("wal: open %s: %w", src, err))
		}
		block = l.pagedBlock()
		encodeHeader(hdr, index, l.opts.SegmentSize, block)
		_, err = f.WriteAt(hdr, 0)
	}
	if err != nil {
		_ = f.Close()
		return wrote, l.fail(fmt.Errorf("wal: write the header of %s: %w", name, err))
	}
	wrote += PageSize
	l.written += PageSize
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return wrote, l.fail(fmt.Errorf("wal: sync the header of %s: %w", name, err))
	}
	if err := l.fs.Rename(src, filepath.Join(l.dir, name)); err != nil {
		_ = f.Close()
		return wrote, l.fail(fmt.Errorf("wal: rename %s to %s: %w", src, name, err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		_ = f.Close()
		return wrote, l.fail(fmt.Errorf("wal: sync %s: %w", l.dir, err))
	}
	l.next++
	l.active = &segment{index: index, name: name, f: f, block: block}
	l.live = append(l.live, l.active)
	l.off = PageSize
	return wrote, nil
}

// forAppend returns the file to append records to in the segment file f (opened
// through the page cache, at path) and its block size: the same file, or the file
// reopened for direct I/O where the file system offers it (Options.BlockSize). f is
// closed when it is replaced.
func (l *Log) forAppend(f File, path string) (File, int64, error) {
	want := l.opts.BlockSize
	d, ok := l.fs.(interface {
		openDirect(string) (File, int, error)
	})
	if !ok {
		return f, l.pagedBlock(), nil
	}
	df, unit, err := d.openDirect(path)
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("wal: open %s for direct I/O: %w", path, err)
	}
	if df == nil || (want != 0 && want%unit != 0) {
		if df != nil {
			_ = df.Close()
		}
		return f, l.pagedBlock(), nil
	}
	_ = f.Close()
	return df, int64(cmp.Or(want, unit)), nil
}

// pagedBlock is the block size of a segment written through the page cache:
// Options.BlockSize, or a page.
func (l *Log) pagedBlock() int64 { return int64(cmp.Or(l.opts.BlockSize, PageSize)) }

// zeroFilled creates a segment file at path with every block written (zeros) and
// synced: later writes into it change no file metadata.
func (l *Log) zeroFilled(path string) (File, int64, error) {
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: create %s: %w", path, err)
	}
	zero := make([]byte, 256<<10)
	var wrote int64
	for off := int64(0); off < l.opts.SegmentSize; off += int64(len(zero)) {
		chunk := zero[:min(int64(len(zero)), l.opts.SegmentSize-off)]
		if _, err := f.WriteAt(chunk, off); err != nil {
			_ = f.Close()
			return nil, wrote, fmt.Errorf("wal: fill %s: %w", path, err)
		}
		wrote += int64(len(chunk))
	}
	l.written += wrote
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, wrote, fmt.Errorf("wal: sync %s: %w", path, err)
	}
	dropCached(f)
	return f, wrote, nil
}

// encodeHeader writes a segment's header page.
func encodeHeader(b []byte, index uint64, size, block int64) {
	clear(b)
	copy(b, segMagic)
	binary.BigEndian.PutUint32(b[8:], formatVersion)
	binary.BigEndian.PutUint32(b[12:], uint32(block))
	binary.BigEndian.PutUint64(b[16:], index)
	binary.BigEndian.PutUint64(b[24:], uint64(size))
	binary.BigEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
}

// Release gives up the segments whose every entry has a sequence ≤ upTo (the caller
// has applied them durably elsewhere), except the active one: up to Spares are kept
// for reuse, renamed, the others removed. It reports how many it released.
func (l *Log) Release(upTo uint64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.failed != nil {
		return 0, l.failed
	}
	n := 0
	var errs []error
	for len(l.live) > 0 && l.live[0] != l.active && l.live[0].last <= upTo {
		s := l.live[0]
		_ = s.f.Close()
		from := filepath.Join(l.dir, s.name)
		var err error
		if len(l.spares) < l.opts.Spares {
			to := spareName(s.index)
			if err = l.fs.Rename(from, filepath.Join(l.dir, to)); err == nil {
				l.spares = append(l.spares, to)
			}
		} else {
			err = l.fs.Remove(from)
		}
		if err != nil {
			errs = append(errs, err)
		}
		l.live = l.live[1:]
		n++
	}
	if n > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("wal: release segments: %w", err)
	}
	return n, nil
}

// Forget gives up every segment whose entries are all ≤ upTo, the active one
// included (the next Append starts a new segment), and removes them and every spare
// instead of keeping them for reuse: no byte of a released record stays in any file
// of the log. The store calls it when it rewrites its database for erasure
// (compaction): a recycled segment would otherwise keep old records past its
// header until they are overwritten. The next segment is a new, zero-filled file.
func (l *Log) Forget(upTo uint64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.failed != nil {
		return 0, l.failed
	}
	if l.active != nil && l.active.last <= upTo {
		l.active = nil // the next Append starts a new segment
	}
	n := 0
	var errs []error
	for len(l.live) > 0 && l.live[0] != l.active && l.live[0].last <= upTo {
		_ = l.live[0].f.Close()
		if err := l.fs.Remove(filepath.Join(l.dir, l.live[0].name)); err != nil {
			errs = append(errs, err)
		}
		l.live = l.live[1:]
		n++
	}
	for _, sp := range l.spares {
		if err := l.fs.Remove(filepath.Join(l.dir, sp)); err != nil {
			errs = append(errs, err)
		}
	}
	l.spares = nil
	if err := l.fs.SyncDir(l.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("wal: forget segments: %w", err)
	}
	return n, nil
}

// SetAside moves every segment read at Open (none of them is appended to) into the
// directory to, byte for byte, and gives them up: a damaged log is kept for a
// person to examine, never deleted.
func (l *Log) SetAside(to string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.fs.MkdirAll(to, 0o750); err != nil {
		return 0, fmt.Errorf("wal: create %s: %w", to, err)
	}
	n := 0
	keep := l.live[:0]
	for _, s := range l.live {
		if s == l.active {
			keep = append(keep, s)
			continue
		}
		_ = s.f.Close()
		if err := l.fs.Rename(filepath.Join(l.dir, s.name), filepath.Join(to, s.name)); err != nil {
			return n, fmt.Errorf("wal: move %s to %s: %w", s.name, to, err)
		}
		n++
	}
	l.live = keep
	if err := l.fs.SyncDir(to); err != nil {
		return n, err
	}
	return n, l.fs.SyncDir(l.dir)
}

// Close closes the segment files. Records appended stay in them for the next Open.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var errs []error
	for _, s := range l.live {
		if s.f != nil {
			errs = append(errs, s.f.Close())
		}
	}
	return errors.Join(errs...)
}

// notExist reports a missing file or directory.
func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
