package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
)

// File writes each batch as JSON lines (each message's JSON, as sync/message defines
// it) appended to dir/summaries-YYYY-MM-DD.jsonl (by the hub's UTC date), and syncs
// the file before acknowledging: the local sink of the embedded default.
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

// Endpoint says where the file transport writes, for the audit.
func (f *File) Endpoint() string { return "file:" + f.dir }

// Dir is the directory of the summaries files.
func (f *File) Dir() string { return f.dir }

// Limits implements Transport.
func (f *File) Limits() Limits {
	return Limits{MaxMessages: 500, MaxBatchBytes: 1 << 20, MaxMessageBytes: SegmentMaxEventBytes, Window: 1}
}

// Size implements Transport.
func (f *File) Size(m store.Message) (int, error) {
	if !json.Valid(m.Body) {
		return 0, fmt.Errorf("transport: file: message %s is not JSON", m.ID)
	}
	return len(m.Body) + 1, nil
}

// Encode implements Transport.
func (f *File) Encode(b Batch, _ time.Time) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	for _, m := range b.Messages {
		buf = append(append(buf, m.Body...), '\n')
	}
	return buf, nil
}

// Send implements Transport.
func (f *File) Send(_ context.Context, bs []Batch) ([]error, int) {
	errs := make([]error, len(bs))
	wire := 0
	for i, b := range bs {
		buf, _ := f.Encode(b, time.Time{})
		errs[i] = f.write(buf)
		bs[i].Payload, bs[i].Wire = buf, len(buf)
		if errs[i] == nil {
			wire += len(buf)
			f.bytes.Add(int64(len(buf)))
			f.msgs.Add(int64(len(b.Messages)))
		}
	}
	return errs, wire
}

func (f *File) write(buf []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := filepath.Join(f.dir, "summaries-"+f.now().UTC().Format(time.DateOnly)+".jsonl")
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("transport: file: %w", err)
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
	return nil
}

// Written returns the bytes and messages delivered so far by this transport.
func (f *File) Written() (bytes, messages int64) { return f.bytes.Load(), f.msgs.Load() }

// Close implements Transport.
func (f *File) Close() error { return nil }
