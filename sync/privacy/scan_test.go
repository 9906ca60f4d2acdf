package privacy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Scan counts every occurrence once, one that straddles two reads (1 MiB) included,
// in every file below dir; with no needle (a household erasure of a hub without
// devices) it only counts files and bytes.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte{'x'}, 1<<20-3)
	big = append(big, []byte("marker7 and marker7")...) // the first straddles the 1 MiB boundary
	if err := os.WriteFile(filepath.Join(dir, "a.db"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "outbox"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "outbox", "b.jsonl"), []byte("marker7marker7 other"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Scan(dir, []byte("marker7"), []byte("other"), []byte("absent"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Files != 2 || r.Bytes != int64(len(big)+20) {
		t.Errorf("scanned %d files, %d bytes", r.Files, r.Bytes)
	}
	if r.Total(0) != 4 || r.Total(1) != 1 || r.Total(2) != 0 {
		t.Errorf("counts %d %d %d, want 4 1 0", r.Total(0), r.Total(1), r.Total(2))
	}
	if h := r.HitFiles(); len(h) != 2 || h[0] != "a.db" || h[1] != filepath.Join("outbox", "b.jsonl") {
		t.Errorf("hit files %v", h)
	}
	r, err = Scan(dir)
	if err != nil || r.Files != 2 || len(r.Hits) != 0 {
		t.Errorf("no needle: %+v, %v", r, err)
	}
}
