package transport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileAppendsJSONLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	f, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.now = func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }
	ctx := context.Background()
	if err := f.WriteBatch(ctx, Batch{ID: "a", Messages: [][]byte{[]byte(`{"n":1}`), []byte(`{"n":2}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteBatch(ctx, Batch{ID: "b", Messages: [][]byte{[]byte(`{"n":3}`)}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "summaries-2026-11-23.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n" {
		t.Errorf("file holds %q", got)
	}
	if bytes, msgs := f.Written(); bytes != int64(len(b)) || msgs != 3 {
		t.Errorf("Written() = %d bytes, %d messages; want %d, 3", bytes, msgs, len(b))
	}
}

// A batch the file cannot take is an error (the outbox keeps it), never a silent loss.
func TestFileWriteErrorIsReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	f, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = f.WriteBatch(context.Background(), Batch{ID: "a", Messages: [][]byte{[]byte(`{}`)}})
	if err == nil || !strings.Contains(err.Error(), "transport: file") {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if _, msgs := f.Written(); msgs != 0 {
		t.Errorf("a failed batch counted %d messages as written", msgs)
	}
}
