package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// Record is one record of the log: N entries with the consecutive sequences First,
// First+1, …, and their body (the caller's encoding).
type Record struct {
	First uint64
	N     int
	Body  []byte
}

// Last is the sequence of the record's last entry.
func (r Record) Last() uint64 { return r.First + uint64(r.N) - 1 }

// Position is a place in the log: a segment and a byte offset in it.
type Position struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

func (p Position) String() string { return fmt.Sprintf("%s@%d", segName(p.Segment), p.Offset) }

// Recovery is what Open found in the log.
type Recovery struct {
	// Segments is the number of segment files read.
	Segments int `json:"segments"`
	// Records is the valid prefix of the log, in order: every record up to the
	// first damage (or the end), with consecutive sequences.
	Records []Record `json:"-"`
	// Torn, when not nil, is where the log ended with a record that failed its
	// checksum and nothing valid after it: the tail of a write that a power cut or
	// crash tore. It is cut off (the next Append goes to a new segment). Its group
	// was never acknowledged: Append returns only after its sync.
	Torn *Position `json:"torn,omitempty"`
	// Damage, when not empty, says what stopped the reading of the log before its
	// end: a record that failed its checksum with valid records after it, a
	// missing segment, a segment whose header is unreadable, a gap in the
	// sequences. What follows it is counted in After and not returned in Records.
	Damage string `json:"damage,omitempty"`
	// At is where the damage is.
	At *Position `json:"at,omitempty"`
	// After counts the valid records found after the damage: never applied, never
	// silently skipped.
	After Counted `json:"after"`
}

// Counted describes records found but not returned.
type Counted struct {
	Records int    `json:"records"`
	Entries int    `json:"entries"`
	First   uint64 `json:"first_seq,omitempty"` // lowest sequence among them
	Last    uint64 `json:"last_seq,omitempty"`  // highest
}

func (c *Counted) add(r Record) {
	c.Records++
	c.Entries += r.N
	if c.First == 0 || r.First < c.First {
		c.First = r.First
	}
	c.Last = max(c.Last, r.Last())
}

// LastSeq is the highest sequence the log holds anywhere: in its valid prefix or
// after damage (a new entry must not reuse any).
func (r *Recovery) LastSeq() uint64 {
	last := r.After.Last
	if n := len(r.Records); n > 0 {
		last = max(last, r.Records[n-1].Last())
	}
	return last
}

// Entries is the number of entries in the valid prefix.
func (r *Recovery) Entries() int {
	n := 0
	for _, rec := range r.Records {
		n += rec.N
	}
	return n
}

// segData is one segment file as read at Open.
type segData struct {
	index uint64
	name  string
	f     File
	data  []byte
	block int64 // its records' unit, from its header
	err   error // the header is unreadable
}

// recover reads the segments (their indices, ascending) and builds the Recovery.
// The segments become the log's live ones, to be released or set aside by the
// caller.
func (l *Log) recover(indices []uint64) (*Recovery, error) {
	rec := &Recovery{Segments: len(indices)}
	segs := make([]*segData, 0, len(indices))
	for _, i := range indices {
		sd, err := l.readSegment(i)
		if err != nil {
			for _, s := range segs {
				_ = s.f.Close()
			}
			return nil, err
		}
		segs = append(segs, sd)
		l.live = append(l.live, &segment{index: i, name: sd.name, f: sd.f, block: sd.block})
	}
	var (
		expect  uint64 // the sequence the next record must start at (0: any)
		damaged bool
	)
	// stop records the damage and counts every valid record after it: the rest of
	// segment k from offset off on (block by block), and every later segment.
	stop := func(k int, off int64, what string) {
		damaged = true
		rec.Damage = what
		rec.At = &Position{Segment: segs[k].index, Offset: off}
		for j := k; j < len(segs); j++ {
			from := int64(PageSize)
			if j == k {
				from = off + segs[j].block
			}
			for _, r := range scanBlocks(segs[j], from) {
				rec.After.add(r)
			}
		}
	}
	for k, sd := range segs {
		if damaged {
			break
		}
		if k > 0 && sd.index != segs[k-1].index+1 {
			stop(k, 0, fmt.Sprintf("segment %s missing (between %s and %s)", segName(segs[k-1].index+1), segs[k-1].name, sd.name))
			break
		}
		if sd.err != nil {
			stop(k, 0, sd.err.Error())
			break
		}
		off := int64(PageSize)
		for !damaged {
			r, size, st := decodeAt(sd, off)
			switch st {
			case recOK:
				if expect != 0 && r.First != expect {
					stop(k, off, fmt.Sprintf("record at %s starts at sequence %d, not %d: entries missing", Position{sd.index, off}, r.First, expect))
					continue
				}
				rec.Records = append(rec.Records, r)
				expect = r.Last() + 1
				off += size
				if s := l.live[k]; s.first == 0 {
					s.first = r.First
				}
				l.live[k].last = r.Last()
				continue
			case recEnd:
				// The segment's records end here; none of this generation may follow.
				if after := scanBlocks(sd, off+sd.block); len(after) > 0 {
					stop(k, off, fmt.Sprintf("the header of the record at %s is damaged (valid records follow it)", Position{sd.index, off}))
					continue
				}
			case recBad:
				if laterValid(segs, k, off) {
					stop(k, off, fmt.Sprintf("the record at %s fails its checksum (valid records follow it)", Position{sd.index, off}))
					continue
				}
				rec.Torn = &Position{Segment: sd.index, Offset: off}
				l.opts.Logger.Warn("write-ahead log: a torn record at the end (a write a crash or power cut interrupted, never acknowledged): cut off",
					"component", "wal", "at", rec.Torn.String())
				// Cut it off for good before anything is appended after it (in the next
				// segment): left as it is, the next Open would find valid records
				// after it and take it for damage.
				if err := cutAt(sd, off); err != nil {
					return nil, err
				}
			}
			break
		}
		if rec.Torn != nil {
			// Anything in later segments would have made it damage, not a tear.
			break
		}
	}
	return rec, nil
}

// cutAt zeroes the block at off of segment sd, where a torn record starts, and syncs.
func cutAt(sd *segData, off int64) error {
	if _, err := sd.f.WriteAt(make([]byte, sd.block), off); err != nil {
		return fmt.Errorf("wal: cut the torn tail of %s: %w", sd.name, err)
	}
	if err := sd.f.Sync(); err != nil {
		return fmt.Errorf("wal: cut the torn tail of %s: %w", sd.name, err)
	}
	return nil
}

// laterValid reports whether a valid record follows offset off of segment k: in
// the rest of it (block by block) or in a later segment.
func laterValid(segs []*segData, k int, off int64) bool {
	if len(scanBlocks(segs[k], off+segs[k].block)) > 0 {
		return true
	}
	for _, s := range segs[k+1:] {
		if s.err == nil && len(scanBlocks(s, PageSize)) > 0 {
			return true
		}
	}
	return false
}

// readSegment opens and reads a whole segment file and checks its header.
func (l *Log) readSegment(index uint64) (*segData, error) {
	name := segName(index)
	path := filepath.Join(l.dir, name)
	f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	size, err := l.fs.Size(path)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("wal: %s: %w", path, err)
	}
	sd := &segData{index: index, name: name, f: f, data: make([]byte, size)}
	if n, err := f.ReadAt(sd.data, 0); n < len(sd.data) {
		_ = f.Close()
		return nil, fmt.Errorf("wal: read %s: %w", path, err)
	}
	dropCached(f) // read whole: appends to it must not dirty the folios readahead made (osFile)
	sd.block, sd.err = checkHeader(sd.data, index)
	if sd.err != nil {
		sd.err = fmt.Errorf("segment %s: %w", name, sd.err)
	}
	return sd, nil
}

// checkHeader checks a segment's header page against the index in its name and
// returns the segment's block size.
func checkHeader(b []byte, index uint64) (int64, error) {
	if len(b) < PageSize {
		return PageSize, fmt.Errorf("%d bytes, shorter than its header page", len(b))
	}
	if !bytes.Equal(b[:8], []byte(segMagic)) {
		return PageSize, fmt.Errorf("no segment header (magic %q)", b[:8])
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.BigEndian.Uint32(b[32:]) {
		return PageSize, fmt.Errorf("header checksum mismatch")
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != formatVersion {
		return PageSize, fmt.Errorf("format %d, this hearth reads %d", v, formatVersion)
	}
	block := binary.BigEndian.Uint32(b[12:])
	if !validBlock(int(block)) {
		return PageSize, fmt.Errorf("block size %d, not a power of two from %d to %d", block, MinBlockSize, PageSize)
	}
	if i := binary.BigEndian.Uint64(b[16:]); i != index {
		return PageSize, fmt.Errorf("header says segment %d", i)
	}
	return int64(block), nil
}

type recStatus int

const (
	recOK  recStatus = iota
	recEnd           // not a record of this segment: zeros, or one left from the file's earlier use
	recBad           // a record of this segment that fails its checksum or does not fit
)

// decodeAt reads the record at off of segment sd: the record, the bytes it takes
// (padded), and whether it is one.
func decodeAt(sd *segData, off int64) (Record, int64, recStatus) {
	b := sd.data
	if off+RecordHeaderSize > int64(len(b)) {
		return Record{}, 0, recEnd
	}
	h := b[off : off+RecordHeaderSize]
	if binary.BigEndian.Uint64(h[8:]) != sd.index {
		return Record{}, 0, recEnd
	}
	n := int64(binary.BigEndian.Uint32(h[4:]))
	if off+RecordHeaderSize+n > int64(len(b)) {
		return Record{}, 0, recBad
	}
	if crc32.Checksum(b[off+4:off+RecordHeaderSize+n], castagnoli) != binary.BigEndian.Uint32(h) {
		return Record{}, 0, recBad
	}
	r := Record{First: binary.BigEndian.Uint64(h[16:]), N: int(binary.BigEndian.Uint32(h[24:])),
		Body: b[off+RecordHeaderSize : off+RecordHeaderSize+n : off+RecordHeaderSize+n]}
	if h[28] != recEntries || r.N <= 0 || r.First == 0 {
		return Record{}, 0, recBad
	}
	return r, RecordSize(int(n), sd.block), recOK
}

// scanBlocks returns the valid records of segment sd found at block boundaries from
// offset from on (a record whose header was damaged hides where the next one
// starts, but each starts at a block boundary).
func scanBlocks(sd *segData, from int64) []Record {
	if sd.err != nil {
		return nil
	}
	var out []Record
	for off := from; off+RecordHeaderSize <= int64(len(sd.data)); {
		r, size, st := decodeAt(sd, off)
		if st == recOK {
			out = append(out, r)
			off += size
			continue
		}
		off += sd.block
	}
	return out
}
