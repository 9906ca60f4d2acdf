// Package waltest has a file system for the write-ahead log that loses power:
// PowerFS keeps files in memory, knows what each Sync and SyncDir made durable, and
// at a power cut keeps only that, with the writes in flight torn — in the manner of
// Pebble's vfs.NewStrictMem, which drops unsynced data but does not tear it, and of
// LazyFS, which does both under a real file system.
package waltest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/hearth-iot/hearth/edge/store/wal"
)

// ErrPowerOff is what every operation returns once the power is cut, until Restart.
var ErrPowerOff = errors.New("waltest: power is off")

// Sector is the unit a torn write keeps or loses: a disk persists whole sectors.
const Sector = 512

// PowerFS is an in-memory wal.FS whose power can be cut.
//
// What survives a cut (Restart):
//   - a file's content as of its last Sync, plus any of the writes since then,
//     each whole, torn (some of its sectors) or lost — a random choice per cut
//     among: all lost; a prefix of them kept, the last one torn; any of their
//     sectors kept, in any order (the disk reorders writes);
//   - a directory's entries (creations, renames, removals) as of its last
//     SyncDir, or — a coin toss per directory — as they were at the cut (a file
//     system's journal may have committed them on its own).
//
// Directories themselves are durable once made. Safe for concurrent use.
type PowerFS struct {
	mu       sync.Mutex
	rng      *rand.Rand
	dirs     map[string]bool
	names    map[string]*inode // the namespace as it is
	durable  map[string]*inode // the namespace as of each directory's last SyncDir
	off      bool
	cutAfter int // mutating operations left before the cut; < 0: no cut planned
	epoch    int // files opened before the last Restart belong to an older one
	cuts     int
}

type inode struct {
	data    []byte  // what reads see
	synced  []byte  // what survives a cut for sure
	pending []write // writes since the last Sync, in order
}

type write struct {
	off  int64
	data []byte
}

// NewPowerFS returns an empty PowerFS whose random choices come from seed.
func NewPowerFS(seed uint64) *PowerFS {
	return &PowerFS{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), dirs: map[string]bool{},
		names: map[string]*inode{}, durable: map[string]*inode{}, cutAfter: -1}
}

var _ wal.FS = (*PowerFS)(nil)

// CutAfter plans a power cut: the n-th mutating operation from now (a write, a
// sync, a create, a rename, a removal) is the one the cut interrupts — a write is
// torn there — and it and every operation after it fail with ErrPowerOff.
func (p *PowerFS) CutAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = max(n, 1)
}

// Off reports whether the power is cut.
func (p *PowerFS) Off() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.off
}

// Cuts is how many times the power was cut.
func (p *PowerFS) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// PowerOff cuts the power now.
func (p *PowerFS) PowerOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut()
}

func (p *PowerFS) cut() {
	if !p.off {
		p.off = true
		p.cuts++
	}
	p.cutAfter = -1
}

// Restart brings the power back: what survived the cut (see PowerFS) is what the
// files hold now, and files opened before it fail with ErrPowerOff. Without a cut
// it cuts first.
func (p *PowerFS) Restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut()
	// The namespace: each directory's synced entries, or those at the cut.
	keepDir := map[string]bool{}
	for d := range p.dirs {
		keepDir[d] = p.rng.IntN(2) == 0
	}
	next := map[string]*inode{}
	for name, ino := range p.durable {
		if !keepDir[filepath.Dir(name)] {
			next[name] = ino
		}
	}
	for name, ino := range p.names {
		if keepDir[filepath.Dir(name)] {
			next[name] = ino
		}
	}
	p.names = next
	p.durable = map[string]*inode{}
	for name, ino := range next {
		p.durable[name] = ino
	}
	seen := map[*inode]bool{}
	for _, ino := range next {
		if !seen[ino] {
			seen[ino] = true
			p.settle(ino)
		}
	}
	p.off = false
	p.epoch++
}

// settle makes an inode's content what a cut leaves of it.
func (p *PowerFS) settle(ino *inode) {
	data := append([]byte(nil), ino.synced...)
	put := func(w write, sectors func(int) bool) {
		end := w.off + int64(len(w.data))
		if int64(len(data)) < end {
			data = append(data, make([]byte, end-int64(len(data)))...)
		}
		for s := int64(0); s < int64(len(w.data)); s += Sector {
			if sectors == nil || sectors(int(s/Sector)) {
				copy(data[w.off+s:], w.data[s:min(s+Sector, int64(len(w.data)))])
			}
		}
	}
	if len(ino.pending) > 0 {
		switch p.rng.IntN(3) {
		case 0: // everything since the last sync lost
		case 1: // a prefix of the writes, the last of it torn
			k := p.rng.IntN(len(ino.pending) + 1)
			for i, w := range ino.pending[:k] {
				if i == k-1 {
					keep := p.rng.IntN(len(w.data)/Sector + 1)
					put(w, func(s int) bool { return s < keep })
				} else {
					put(w, nil)
				}
			}
		default: // any sectors of any of them
			for _, w := range ino.pending {
				put(w, func(int) bool { return p.rng.IntN(2) == 0 })
			}
		}
	}
	ino.data, ino.synced, ino.pending = data, append([]byte(nil), data...), nil
}

// step counts a mutating operation and cuts the power when its turn comes: it
// reports whether the operation is the one cut (it may then leave part of its effect).
func (p *PowerFS) step() (cutNow bool, err error) {
	if p.off {
		return false, ErrPowerOff
	}
	if p.cutAfter > 0 {
		p.cutAfter--
		if p.cutAfter == 0 {
			p.cut()
			return true, ErrPowerOff
		}
	}
	return false, nil
}

func (p *PowerFS) live() error {
	if p.off {
		return ErrPowerOff
	}
	return nil
}

// OpenFile implements wal.FS (O_CREATE, O_TRUNC and O_EXCL are honoured).
func (p *PowerFS) OpenFile(name string, flag int, _ os.FileMode) (wal.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name = filepath.Clean(name)
	ino, ok := p.names[name]
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		if _, err := p.step(); err != nil {
			return nil, err
		}
	} else if err := p.live(); err != nil {
		return nil, err
	}
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		if !p.dirs[filepath.Dir(name)] {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		ino = &inode{}
		p.names[name] = ino
	}
	if flag&os.O_TRUNC != 0 {
		ino.pending = append(ino.pending, write{}) // marks the change; the data goes
		ino.data = nil
		ino.synced = nil // a truncation is metadata: durable at the next Sync, lost with the file otherwise
	}
	return &file{p: p, ino: ino, name: name, epoch: p.epoch}, nil
}

// Size implements wal.FS.
func (p *PowerFS) Size(name string) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.live(); err != nil {
		return 0, err
	}
	ino, ok := p.names[filepath.Clean(name)]
	if !ok {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return int64(len(ino.data)), nil
}

// Rename implements wal.FS.
func (p *PowerFS) Rename(from, to string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	from, to = filepath.Clean(from), filepath.Clean(to)
	if _, err := p.step(); err != nil {
		return err
	}
	ino, ok := p.names[from]
	if !ok {
		return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
	}
	if !p.dirs[filepath.Dir(to)] {
		return &fs.PathError{Op: "rename", Path: to, Err: fs.ErrNotExist}
	}
	delete(p.names, from)
	p.names[to] = ino
	return nil
}

// Remove implements wal.FS.
func (p *PowerFS) Remove(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	name = filepath.Clean(name)
	if _, err := p.step(); err != nil {
		return err
	}
	if _, ok := p.names[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(p.names, name)
	return nil
}

// MkdirAll implements wal.FS.
func (p *PowerFS) MkdirAll(dir string, _ os.FileMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.live(); err != nil {
		return err
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		p.dirs[d] = true
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// ReadDir implements wal.FS.
func (p *PowerFS) ReadDir(dir string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.live(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	if !p.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var out []string
	for name := range p.names {
		if filepath.Dir(name) == dir {
			out = append(out, filepath.Base(name))
		}
	}
	sort.Strings(out)
	return out, nil
}

// SyncDir implements wal.FS.
func (p *PowerFS) SyncDir(dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	dir = filepath.Clean(dir)
	if _, err := p.step(); err != nil {
		return err
	}
	for name := range p.durable {
		if filepath.Dir(name) == dir {
			delete(p.durable, name)
		}
	}
	for name, ino := range p.names {
		if filepath.Dir(name) == dir {
			p.durable[name] = ino
		}
	}
	return nil
}

// ReadFile returns a file's content as reads see it now.
func (p *PowerFS) ReadFile(name string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ino, ok := p.names[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), ino.data...), nil
}

// WriteFile replaces a file's content, durably (a test damaging a file).
func (p *PowerFS) WriteFile(name string, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	name = filepath.Clean(name)
	ino, ok := p.names[name]
	if !ok {
		ino = &inode{}
		p.names[name] = ino
		p.durable[name] = ino
	}
	ino.data, ino.synced, ino.pending = append([]byte(nil), b...), append([]byte(nil), b...), nil
	return nil
}

type file struct {
	p      *PowerFS
	ino    *inode
	name   string
	epoch  int
	closed bool
}

func (f *file) check() error {
	if f.closed {
		return fs.ErrClosed
	}
	if f.epoch != f.p.epoch {
		return ErrPowerOff
	}
	return nil
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if err := f.p.live(); err != nil {
		return 0, err
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.ino.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("waltest: write at %d", off)
	}
	cutNow, err := f.p.step()
	if err != nil && !cutNow {
		return 0, err
	}
	w := write{off: off, data: append([]byte(nil), b...)}
	if cutNow { // the write the cut interrupted: some of it reached the page cache
		w.data = w.data[:f.p.rng.IntN(len(w.data)+1)]
	}
	f.ino.pending = append(f.ino.pending, w)
	if end := off + int64(len(w.data)); int64(len(f.ino.data)) < end {
		f.ino.data = append(f.ino.data, make([]byte, end-int64(len(f.ino.data)))...)
	}
	copy(f.ino.data[off:], w.data)
	if cutNow {
		return len(w.data), ErrPowerOff
	}
	return len(b), nil
}

func (f *file) Sync() error {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	if _, err := f.p.step(); err != nil {
		return err
	}
	f.ino.synced = append(f.ino.synced[:0], f.ino.data...)
	f.ino.pending = nil
	return nil
}

func (f *file) Close() error {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	return nil
}
