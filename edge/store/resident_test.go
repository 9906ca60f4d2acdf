//go:build linux

package store

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
)

// mappedRSS is the resident size, in kB, of this process's mappings of path
// (/proc/self/smaps), and whether any was found.
func mappedRSS(t *testing.T, path string) (int, bool) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, found, in := 0, false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			found = found || in
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			total += kb
		}
	}
	return total, found
}

// Reading the log makes the file's pages resident through bbolt's mapping;
// ReleaseMapped gives them back, and the data reads the same afterwards.
func TestReleaseMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, &Options{QuotaBytes: 1 << 30})
	defer s.Close()
	const n = 60000
	rs := make([]device.Reading, 0, 1000)
	for i := range n {
		rs = append(rs, reading("fridge1", 1, uint64(i+1), float64(i%2)))
		if len(rs) == cap(rs) {
			if err := device.Commit(context.Background(), s, rs); err != nil {
				t.Fatal(err)
			}
			rs = rs[:0]
		}
	}
	if err := s.Sync(); err != nil { // the events in the file, not in the batch
		t.Fatal(err)
	}
	// Touch every page of the log through bbolt's mapping.
	touched := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error { touched += len(v); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	before, found := mappedRSS(t, path)
	if !found {
		t.Fatalf("no mapping of %s in /proc/self/smaps", path)
	}
	if before < 1024 {
		t.Fatalf("after reading %d readings only %d kB of the file is resident: the test reads too little", n, before)
	}
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	after, _ := mappedRSS(t, path)
	if after > before/10 {
		t.Errorf("resident pages of the store file: %d kB before ReleaseMapped, %d kB after", before, after)
	}
	got := readAll(t, s)
	if len(got) != n || got[n-1].Seq != n || got[n-1].Value != float64((n-1)%2) {
		t.Fatalf("after ReleaseMapped: %d readings, last %+v", len(got), got[len(got)-1])
	}
	t.Logf("store file resident: %d kB after reading %d readings, %d kB after ReleaseMapped", before, n, after)

	// A long ReadEvents (the rollup catching up) releases what it touched itself.
	if _, err := s.ReadEvents(0, 0, func(uint64, *device.Reading) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if rss, _ := mappedRSS(t, path); rss > before/10 {
		t.Errorf("after a ReadEvents of %d events, %d kB of the store file is resident (%d kB after a full read without release)", n, rss, before)
	}
}
