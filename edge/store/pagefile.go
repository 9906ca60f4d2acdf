package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
)

// Reading the bbolt file without bbolt.
//
// bbolt trusts its file. It reads pages through a memory map and asserts what it
// finds: a damaged page makes it panic, and at Open — with NoFreelistSync, while it
// rebuilds the free list — it does so on a goroutine of its own, where no recover of
// ours can reach (bbolt 1.5 db.freepages runs tx.recursivelyCheckBucket on a new
// goroutine). A page id past the end of the file is a read past the mapping: a
// fault (SIGBUS, SIGSEGV) that debug.SetPanicOnFault turns into a panic only on the
// goroutine that set it. Either one kills the process, at every start: a boot loop.
//
// So the store reads the file itself first, with ReadAt, from the meta pages down
// (boltFile), and hands it to bbolt only when every page bbolt will read is sound:
// each page says it is the page it was reached as and is a branch or a leaf, its
// overflow stays below the high-water mark, its elements lie inside it, keys are in
// order within pages and between a branch and its children, no page is reached
// twice, and the file is as long as the meta says. That is what bbolt's own check
// (tx.Check) verifies, read from the file instead of trusted through the map; what
// bbolt does not reach (the pages this walk does not reach) is exactly what it
// takes to be free. A damaged file is then a clean error, in any goroutine
// (quarantine, salvage.go), never a crash. The same reader walks a damaged file
// tolerantly for salvage: it skips what it cannot trust and keeps the rest.
//
// Layout (bbolt internal/common; native byte order, little-endian on every hub
// target): a page starts with a 16-byte header {id u64, flags u16, count u16,
// overflow u32}. A meta page (pages 0 and 1) follows it with {magic u32, version
// u32, page size u32, flags u32, root bucket {root pgid u64, sequence u64}, freelist
// pgid u64, high-water pgid u64, txid u64, checksum u64 (FNV-64a of the fields
// before it)}. A branch element is {pos u32, key size u32, child pgid u64}, a leaf
// element {flags u32, pos u32, key size u32, value size u32}; pos counts from the
// element itself. A leaf element with flag 1 is a bucket: its value is {root pgid
// u64, sequence u64}, followed, when root is 0, by the bucket's only page (inline).

const (
	pageHeaderSize   = 16
	elementSize      = 16 // branch and leaf elements alike
	bucketHeaderSize = 16
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
	metaChecksumAt   = 56 // offset of the checksum in the meta, after the page header
	maxTreeDepth     = 64
)

var ne = binary.NativeEndian

// boltMeta is a meta page's content.
type boltMeta struct {
	pageSize uint32
	root     uint64 // page of the root bucket
	freelist uint64 // page of the free list, or noFreelist
	hwm      uint64 // high-water mark: the first page id past the data
	txid     uint64
}

// parseMeta decodes the meta page that starts b, checking what bbolt's
// Meta.Validate checks.
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < pageHeaderSize+metaChecksumAt+8 {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[pageHeaderSize:]
	if ne.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("no bbolt magic")
	}
	if v := ne.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksumAt])
	if sum := ne.Uint64(m[metaChecksumAt:]); sum != h.Sum64() {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		hwm: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, nil
}

// boltFile is a bbolt file read with ReadAt: the meta bbolt would use, and the
// pages reached so far.
type boltFile struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	meta     boltMeta
	metaPage int // the meta page in use: 0 or 1
	// otherMeta says why the other meta page is unusable, or "": bbolt then opens
	// the transaction of the valid one (the other may have held the newer one).
	otherMeta string
	alt       *boltMeta // the other meta page, when it is valid too (salvage)
	reached   []uint64  // bitmap of the pages reached
}

// readBoltFile reads the meta pages as bbolt does (the page size from the first
// valid one, then the valid meta with the higher txid) and checks that the meta in
// use fits the file (when strict: salvage reads what is left of a truncated file).
// A zero-length file is a new one (nil, nil).
func readBoltFile(r io.ReaderAt, size int64, strict bool) (*boltFile, error) {
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, 4096)
	readAt := func(off int64) []byte {
		n, _ := r.ReadAt(buf, off)
		return buf[:n]
	}
	// The page size: meta 0's, or the first valid meta found at 1 KiB << i (bbolt
	// getPageSize).
	pageSize := 0
	if m, err := parseMeta(readAt(0)); err == nil {
		pageSize = int(m.pageSize)
	} else {
		for i := 0; i <= 14 && int64(1024)<<i < size-1024; i++ {
			if m, err := parseMeta(readAt(int64(1024) << i)); err == nil {
				pageSize = int(m.pageSize)
				break
			}
		}
	}
	if pageSize < 1024 || pageSize > 1<<24 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("neither meta page is valid (file of %d bytes)", size)
	}
	var metas [2]boltMeta
	var errs [2]error
	for i := range metas {
		page := make([]byte, pageHeaderSize+metaChecksumAt+8)
		if _, err := r.ReadAt(page, int64(i*pageSize)); err != nil {
			errs[i] = fmt.Errorf("unreadable: %w", err)
			continue
		}
		metas[i], errs[i] = parseMeta(page)
		if errs[i] == nil && int(metas[i].pageSize) != pageSize {
			errs[i] = fmt.Errorf("page size %d, the file's is %d", metas[i].pageSize, pageSize)
		}
	}
	// bbolt's DB.meta: the higher txid if it is valid, else the other.
	use := 0
	if errs[1] == nil && (errs[0] != nil || metas[1].txid > metas[0].txid) {
		use = 1
	}
	if errs[use] != nil {
		return nil, fmt.Errorf("meta page 0: %v; meta page 1: %v", errs[0], errs[1])
	}
	bf := &boltFile{r: &chunkReader{r: r, size: size}, size: size, pageSize: pageSize, meta: metas[use], metaPage: use}
	if errs[1-use] != nil {
		bf.otherMeta = fmt.Sprintf("meta page %d: %v", 1-use, errs[1-use])
	} else {
		bf.alt = &metas[1-use]
	}
	m := bf.meta
	if end := m.hwm * uint64(pageSize); m.hwm < 3 || end/uint64(pageSize) != m.hwm || strict && end > uint64(size) {
		return nil, fmt.Errorf("truncated: %d bytes, meta page %d says the data ends at page %d (byte %d)", size, use, m.hwm, m.hwm*uint64(pageSize))
	}
	if m.root < 2 || m.root >= m.hwm {
		return nil, fmt.Errorf("meta page %d: root page %d outside [2, %d)", use, m.root, m.hwm)
	}
	if m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm) {
		return nil, fmt.Errorf("meta page %d: free-list page %d outside [2, %d)", use, m.freelist, m.hwm)
	}
	bf.reached = make([]uint64, (m.hwm+63)/64)
	return bf, nil
}

// readRaw reads page id and its overflow pages as they are, for a scan of pages
// outside the tree: the header must name the page and its overflow fit the data.
func (bf *boltFile) readRaw(id uint64) ([]byte, error) {
	ps := uint64(bf.pageSize)
	buf := make([]byte, ps)
	if _, err := bf.readAt(buf, int64(id*ps)); err != nil {
		return nil, err
	}
	overflow := uint64(ne.Uint32(buf[12:]))
	if ne.Uint64(buf) != id || id+overflow >= bf.meta.hwm {
		return nil, damaged(id, "not a page")
	}
	if overflow > 0 {
		buf = append(buf, make([]byte, overflow*ps)...)
		if _, err := bf.readAt(buf[ps:], int64((id+1)*ps)); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func (bf *boltFile) readAt(b []byte, off int64) (int, error) { return bf.r.ReadAt(b, off) }

// chunkReader reads a file in aligned chunks of chunkSize bytes and keeps the
// last few: a walk of the tree reads most pages in file order (bbolt allocates
// pages as the keys grow), and one read of 256 KiB costs less than 64 of 4 KiB.
type chunkReader struct {
	r      io.ReaderAt
	size   int64
	chunks [4]struct {
		off int64
		buf []byte
	}
	next int
}

const chunkSize = 256 << 10

func (c *chunkReader) ReadAt(b []byte, off int64) (int, error) {
	start := off &^ (chunkSize - 1)
	if off+int64(len(b)) > start+chunkSize || off < 0 {
		return c.r.ReadAt(b, off) // across chunks: read it as it is
	}
	for i := range c.chunks {
		if ch := &c.chunks[i]; ch.buf != nil && ch.off == start {
			return c.copy(b, ch.buf, off-start)
		}
	}
	ch := &c.chunks[c.next]
	c.next = (c.next + 1) % len(c.chunks)
	if ch.buf == nil {
		ch.buf = make([]byte, chunkSize)
	}
	n, err := c.r.ReadAt(ch.buf[:chunkSize], start)
	if n < chunkSize && (err == nil || errors.Is(err, io.EOF)) && start+int64(n) >= c.size {
		err = nil // the file's last chunk
	}
	if err != nil {
		ch.buf = nil
		return c.r.ReadAt(b, off)
	}
	ch.off, ch.buf = start, ch.buf[:n]
	return c.copy(b, ch.buf, off-start)
}

func (c *chunkReader) copy(b, chunk []byte, at int64) (int, error) {
	if at >= int64(len(chunk)) {
		return 0, io.EOF
	}
	n := copy(b, chunk[at:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// pageError is damage found at one page.
type pageError struct {
	page uint64
	what string
}

func (e *pageError) Error() string { return fmt.Sprintf("page %d: %s", e.page, e.what) }

func damaged(page uint64, format string, args ...any) error {
	return &pageError{page: page, what: fmt.Sprintf(format, args...)}
}

// readPage reads page id and its overflow pages, checking the header: the page
// says it is id, is a branch or a leaf (or a free list, when want is
// freelistPageFlag), and ends below the high-water mark. It marks the pages
// reached; a page reached twice is damage (two parents, or a cycle).
//
// The page is read into buf when it is large enough (nil: a new buffer).
func (bf *boltFile) readPage(id uint64, freelist bool, buf []byte) ([]byte, error) {
	if id < 2 || id >= bf.meta.hwm {
		return nil, damaged(id, "outside the data [2, %d)", bf.meta.hwm)
	}
	ps := uint64(bf.pageSize)
	buf = grow(buf, int(ps))
	if _, err := bf.readAt(buf, int64(id*ps)); err != nil {
		return nil, damaged(id, "unreadable: %v", err)
	}
	if got := ne.Uint64(buf[0:]); got != id {
		return nil, damaged(id, "identifies as page %d", got)
	}
	flags := ne.Uint16(buf[8:])
	switch {
	case freelist && flags != freelistPageFlag:
		return nil, damaged(id, "type %#x, want a free list", flags)
	case !freelist && flags != branchPageFlag && flags != leafPageFlag:
		return nil, damaged(id, "type %#x, want a branch or a leaf", flags)
	}
	overflow := uint64(ne.Uint32(buf[12:]))
	if id+overflow >= bf.meta.hwm {
		return nil, damaged(id, "%d overflow pages run past the data (page %d)", overflow, bf.meta.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		if bf.reached[p/64]&(1<<(p%64)) != 0 {
			return nil, damaged(p, "reached twice")
		}
	}
	for p := id; p <= id+overflow; p++ {
		bf.reached[p/64] |= 1 << (p % 64)
	}
	if overflow > 0 {
		buf = grow(buf, int((overflow+1)*ps))
		if _, err := bf.readAt(buf[ps:], int64((id+1)*ps)); err != nil {
			return nil, damaged(id, "overflow unreadable: %v", err)
		}
	}
	return buf, nil
}

// grow returns buf resized to n bytes, reusing its array when it can, with what
// it held.
func grow(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return append(buf[:cap(buf)], make([]byte, n-cap(buf))...)
}

// element is one element of a branch or leaf page.
type element struct {
	bucket bool   // leaf: the value is a bucket
	key    []byte // slices of the page read
	value  []byte
	child  uint64 // branch: the child page
	page   uint64 // the page it is on (0: an inline page)
	index  int    // its place on the page
	// misplaced: not where bbolt would have written it (a neighbour's size or
	// position is damaged: salvage distrusts it and its neighbours).
	misplaced bool
}

// parseElements decodes the elements of a branch or leaf page (p starts with its
// header; inline: a bucket's page kept in its value, which it fills exactly).
// strict: the page must be exactly as bbolt writes one (common.WriteInodeToPage):
// the element headers, then every key and value back to back in element order,
// then zeros to the end of the page, and just as many overflow pages as that
// takes — so a changed count, position, size or stray byte anywhere in the page is
// an error. Otherwise (salvage) each element that lies inside the page is kept,
// the others skipped and counted (bad), and a count that does not fit is cut to
// what does.
//
// The elements are appended to elems[:0] (nil: a new slice).
func parseElements(p []byte, id uint64, strict, inline bool, elems []element) (leaf bool, _ []element, bad int, err error) {
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	leaf = flags == leafPageFlag
	if fit := (len(p) - pageHeaderSize) / elementSize; count > fit {
		if strict {
			return leaf, nil, 0, damaged(id, "%d elements do not fit", count)
		}
		bad += count - fit
		count = fit
	}
	if !leaf && count == 0 && strict {
		return leaf, nil, 0, damaged(id, "branch without elements")
	}
	elems = slices.Grow(elems[:0], count)
	next := uint64(pageHeaderSize + count*elementSize) // where bbolt put the next key
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := p[off : off+elementSize]
		var pos, ksize, vsize uint64
		var el element
		if leaf {
			el.bucket = ne.Uint32(e[0:])&bucketLeafFlag != 0
			pos, ksize, vsize = uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
			if fl := ne.Uint32(e[0:]); fl&^bucketLeafFlag != 0 {
				if strict {
					return leaf, nil, 0, damaged(id, "element %d: flags %#x", i, fl)
				}
				bad++
				continue
			}
		} else {
			pos, ksize = uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:]))
			el.child = ne.Uint64(e[8:])
		}
		start := uint64(off) + pos
		end := start + ksize + vsize
		if pos < elementSize || end > uint64(len(p)) || ksize == 0 {
			if strict {
				return leaf, nil, 0, damaged(id, "element %d lies outside the page", i)
			}
			bad++
			continue
		}
		if start != next {
			if strict {
				return leaf, nil, 0, damaged(id, "element %d starts at byte %d, where bbolt writes it at %d", i, start, next)
			}
			el.misplaced = true
		}
		el.page, el.index = id, i
		next = end
		el.key = p[start : start+ksize : start+ksize]
		if leaf {
			el.value = p[start+ksize : end : end]
		}
		elems = append(elems, el)
	}
	if strict {
		if inline && next != uint64(len(p)) {
			return leaf, nil, 0, damaged(id, "inline page of %d bytes in a value of %d", next, len(p))
		}
		if !inline {
			ps := uint64(len(p)) / (uint64(ne.Uint32(p[12:])) + 1)
			if pages := (next + ps - 1) / ps; pages != uint64(len(p))/ps {
				return leaf, nil, 0, damaged(id, "%d bytes on %d pages (bbolt allocates %d)", next, len(p)/int(ps), pages)
			}
			if i := firstNonZero(p[next:]); i >= 0 {
				return leaf, nil, 0, damaged(id, "byte %d after the last element is not zero", next+uint64(i))
			}
		}
	}
	return leaf, elems, bad, nil
}

// firstNonZero returns the index of the first byte of b that is not zero, or -1.
func firstNonZero(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if ne.Uint64(b[i:]) != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// walker walks the B+trees of a boltFile. strict: any damage ends the walk with
// its error (Open). Otherwise (salvage) damage is noted and the walk goes on with
// what it can still trust.
type walker struct {
	bf     *boltFile
	strict bool
	// damage is called, when not strict, for each page or element skipped.
	damage func(damageNote)
	// pages and elems are reused, one per depth of the tree, when strict: what
	// fn is given is valid only during the call. (Salvage keeps what it is given.)
	pages [][]byte
	elems [][]element
}

// damageNote is damage a tolerant walk skipped.
type damageNote struct {
	bucket string
	page   uint64
	what   string
	// lost is how many elements were dropped, or -1 for a page that could not be
	// read at all: everything under it, keys in [lo, hi) (nil: unbounded), is lost.
	lost   int
	lo, hi []byte
}

// bucketRoot decodes a bucket value: its root page, its sequence, and its inline
// page (root 0).
func bucketRoot(v []byte) (root, seq uint64, inline []byte, err error) {
	if len(v) < bucketHeaderSize {
		return 0, 0, nil, fmt.Errorf("bucket header of %d bytes", len(v))
	}
	root, seq = ne.Uint64(v[0:]), ne.Uint64(v[8:])
	if root == 0 {
		inline = v[bucketHeaderSize:]
		if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != leafPageFlag {
			return 0, 0, nil, errors.New("inline bucket without a leaf page")
		}
	}
	return root, seq, inline, nil
}

// forEach calls fn for every element of the bucket whose value is v, in key order.
// Nested buckets are fn's to walk (their elements have bucket set).
func (w *walker) forEach(name string, v []byte, fn func(e element) error) error {
	root, _, inline, err := bucketRoot(v)
	if err != nil {
		return err
	}
	if inline != nil {
		// An inline page lives in its parent's value: no page of its own, id 0.
		leaf, elems, bad, err := parseElements(inline, 0, w.strict, true, nil)
		if err == nil && !leaf {
			err = errors.New("inline page is not a leaf")
		}
		if err != nil {
			return fmt.Errorf("bucket %s (inline): %w", name, err)
		}
		if bad > 0 {
			w.damage(damageNote{bucket: name, what: "inline page: elements outside it", lost: bad})
		}
		return w.leaf(name, 0, elems, nil, nil, fn)
	}
	return w.tree(name, root, nil, nil, 0, fn)
}

// tree walks the subtree at page id, whose keys must lie in [lo, hi) (nil: open).
func (w *walker) tree(name string, id uint64, lo, hi []byte, depth int, fn func(e element) error) error {
	fail := func(err error) error {
		if w.strict {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
		n := damageNote{bucket: name, page: id, what: err.Error(), lost: -1, lo: lo, hi: hi}
		var pe *pageError
		if errors.As(err, &pe) {
			n.page, n.what = pe.page, pe.what
		}
		w.damage(n)
		return nil
	}
	if depth > maxTreeDepth {
		return fail(damaged(id, "tree deeper than %d", maxTreeDepth))
	}
	var pbuf []byte
	var ebuf []element
	if w.strict {
		for len(w.pages) <= depth {
			w.pages, w.elems = append(w.pages, nil), append(w.elems, nil)
		}
		pbuf, ebuf = w.pages[depth], w.elems[depth]
	}
	p, err := w.bf.readPage(id, false, pbuf)
	if err != nil {
		return fail(err)
	}
	leaf, elems, bad, err := parseElements(p, id, w.strict, false, ebuf)
	if w.strict {
		w.pages[depth], w.elems[depth] = p, elems
	}
	if err != nil {
		return fail(err)
	}
	if bad > 0 {
		w.damage(damageNote{bucket: name, page: id, what: "elements outside the page", lost: bad})
	}
	if leaf {
		return w.leaf(name, id, elems, lo, hi, fn)
	}
	prev := lo
	for i, e := range elems {
		if err := w.order(name, id, i, e.key, prev, hi); err != nil {
			if w.strict {
				return err
			}
			// A child whose key is out of place: what it holds lies somewhere
			// between its neighbours.
			w.damage(damageNote{bucket: name, page: id, what: "branch key out of order", lost: -1, lo: prev, hi: hi})
			continue
		}
		next := hi
		for _, f := range elems[i+1:] { // the next key in order bounds this child
			if bytes.Compare(f.key, e.key) > 0 && (hi == nil || bytes.Compare(f.key, hi) < 0) {
				next = f.key
				break
			}
		}
		if err := w.tree(name, e.child, e.key, next, depth+1, fn); err != nil {
			return err
		}
		prev = e.key
	}
	return nil
}

// leaf calls fn for each element of a leaf page in key order.
func (w *walker) leaf(name string, id uint64, elems []element, lo, hi []byte, fn func(e element) error) error {
	prev := lo
	for i, e := range elems {
		if err := w.order(name, id, i, e.key, prev, hi); err != nil {
			if w.strict {
				return err
			}
			w.damage(damageNote{bucket: name, page: id, what: "key out of order", lost: 1})
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
		prev = e.key
	}
	return nil
}

// order checks that the key of element i lies after prev (the first at or after
// it: a page's first key equals the key its parent has for it) and before hi.
func (w *walker) order(name string, id uint64, i int, key, prev, hi []byte) error {
	c := 1
	if prev != nil {
		c = bytes.Compare(key, prev)
	}
	if c < 0 || (c == 0 && i > 0) || (hi != nil && bytes.Compare(key, hi) >= 0) {
		return fmt.Errorf("bucket %s: %w", name, damaged(id, "key %d (%x) out of order", i, key))
	}
	return nil
}

// checkFreelist checks a synced free list (files written without NoFreelistSync,
// such as those of an older hearth): every id inside the data, none twice, none
// reached from the tree, and every page either free or reached. bbolt reads it at
// Open instead of rebuilding the list.
func (bf *boltFile) checkFreelist() error {
	if bf.meta.freelist == noFreelist {
		return nil
	}
	id := bf.meta.freelist
	p, err := bf.readPage(id, true, nil)
	if err != nil {
		return err
	}
	count, at := uint64(ne.Uint16(p[10:])), pageHeaderSize
	if count == 0xFFFF { // the count is the first element
		count, at = ne.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(p)-at)/8 {
		return damaged(id, "free list of %d ids does not fit", count)
	}
	seen := map[uint64]bool{}
	for i := range count {
		f := ne.Uint64(p[at+int(i)*8:])
		switch {
		case f < 2 || f >= bf.meta.hwm:
			return damaged(id, "free page %d outside the data", f)
		case seen[f]:
			return damaged(id, "page %d freed twice", f)
		case bf.reached[f/64]&(1<<(f%64)) != 0 && f != id:
			return damaged(id, "page %d is both free and in use", f)
		}
		seen[f] = true
	}
	// What the list does not name and the tree does not reach is lost to both (bbolt's
	// check: "unreachable unfreed"), a sign the list or a page was damaged.
	for p := uint64(2); p < bf.meta.hwm; p++ {
		if bf.reached[p/64]&(1<<(p%64)) == 0 && !seen[p] {
			return damaged(p, "neither in use nor in the free list")
		}
	}
	return nil
}
