// Package transport delivers batches of summaries out of the hub. A Transport is
// Connect-free and stateless between calls: WriteBatch either delivers the whole
// batch (and returns nil) or returns an error, after which the outbox keeps the batch
// and tries again; a batch may be delivered more than once, so every message carries
// a deterministic id the receiver de-duplicates on.
package transport

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Batch is what one delivery carries.
type Batch struct {
	ID       string   // deterministic: the same messages make the same id
	Messages [][]byte // each one JSON object
}

// Transport delivers batches. Implementations are safe for use by one goroutine.
type Transport interface {
	Name() string
	WriteBatch(ctx context.Context, b Batch) error
	Close() error
}

// File writes each batch as JSON lines appended to dir/summaries-YYYY-MM-DD.jsonl
// (by the hub's UTC date) and syncs the file before acknowledging: the local sink of
// the embedded default, and what a later cloud transport's payloads look like.
type File struct {
	dir   string
	now   func() time.Time
	mu    sync.Mutex
	bytes atomic.Int64
	msgs  atomic.Int64
}

// NewFile returns a File transport writing under dir (created if missing).
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return &File{dir: dir, now: time.Now}, nil
}

// Name implements Transport.
func (f *File) Name() string { return "file" }

// WriteBatch implements Transport.
func (f *File) WriteBatch(_ context.Context, b Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := filepath.Join(f.dir, "summaries-"+f.now().UTC().Format(time.DateOnly)+".jsonl")
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("transport: file: %w", err)
	}
	n := 0
	buf := make([]byte, 0, 4096)
	for _, m := range b.Messages {
		buf = append(append(buf, m...), '\n')
		n += len(m) + 1
	}
	if _, err := fh.Write(buf); err != nil {
		fh.Close()
		return fmt.Errorf("transport: file %s: %w", path, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("transport: file %s: sync: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("transport: file %s: %w", path, err)
	}
	f.bytes.Add(int64(n))
	f.msgs.Add(int64(len(b.Messages)))
	return nil
}

// Written returns the bytes and messages delivered so far by this transport.
func (f *File) Written() (bytes, messages int64) { return f.bytes.Load(), f.msgs.Load() }

// Close implements Transport.
func (f *File) Close() error { return nil }
