package store

import (
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
)

var update = flag.Bool("update", false, "rewrite the corrupted-file fixtures in testdata/corrupt")

// corruptions are the ways a store file is found damaged at start. Each fixture in
// testdata/corrupt is made from one small valid store by the function here (-update
// rewrites them); the test opens a copy of each.
var corruptions = []struct {
	name string
	make func(valid []byte, pageSize int) []byte
	// fresh: the file is not moved aside but initialised (bbolt treats an empty
	// file as new: what power loss during the very first start leaves).
	fresh bool
}{
	{"zero-length", func([]byte, int) []byte { return nil }, true},
	{"truncated-mid-meta", func(v []byte, ps int) []byte { return v[:100] }, false},
	{"truncated-half", func(v []byte, ps int) []byte { return v[:len(v)/2] }, false},
	{"zeroed-meta-pages", func(v []byte, ps int) []byte {
		b := bytes.Clone(v)
		clear(b[:2*ps])
		return b
	}, false},
	{"random-garbage", func(v []byte, ps int) []byte {
		b := make([]byte, len(v))
		r := rand.New(rand.NewPCG(1, 2))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}, false},
	{"text-file", func(v []byte, ps int) []byte { return []byte(strings.Repeat("not a database ", 1000)) }, false},
	{"flipped-bytes-in-leaf", func(v []byte, ps int) []byte {
		// Page headers of every data page after the metas and the first freelist:
		// flip the flags and count of each, as a torn or rotted sector would.
		b := bytes.Clone(v)
		for p := 3; (p+1)*ps <= len(b); p++ {
			for i := 8; i < 16; i++ {
				b[p*ps+i] ^= 0xA5
			}
		}
		return b
	}, false},
	{"flipped-bytes-in-freelist", func(v []byte, ps int) []byte {
		b := bytes.Clone(v)
		for i := 2 * ps; i < 2*ps+32; i++ {
			b[i] ^= 0xFF
		}
		return b
	}, false},
}

// validFixture builds the small valid store every corrupted fixture derives from.
func validFixture(t *testing.T) []byte {
	path := filepath.Join(t.TempDir(), "valid.db")
	s, err := Open(path, &Options{Now: func() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	var rs []device.Reading
	for q := uint64(1); q <= 300; q++ {
		rs = append(rs, reading("fridge1", 1, q, float64(q%2)))
	}
	if err := device.Commit(context.Background(), s, rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A corrupt or truncated file at start is moved aside with a timestamp, a fresh store
// is started and takes readings, and the event is counted: never a boot loop.
func TestCorruptTable(t *testing.T) {
	dir := filepath.Join("testdata", "corrupt")
	if *update {
		valid := validFixture(t)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range corruptions {
			if err := os.WriteFile(filepath.Join(dir, c.name+".db"), c.make(valid, os.Getpagesize()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			orig, err := os.ReadFile(filepath.Join(dir, c.name+".db"))
			if err != nil {
				t.Fatalf("fixture: %v (run with -update to make it)", err)
			}
			path := filepath.Join(t.TempDir(), "hearth.db")
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			// Start twice: the second start must find a healthy store, not loop.
			for start := 1; start <= 2; start++ {
				s, err := Open(path, &Options{Registerer: reg, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatalf("start %d: Open: %v", start, err)
				}
				wantMoved := start == 1 && !c.fresh
				if got := s.Recovered != ""; got != wantMoved {
					t.Fatalf("start %d: Recovered = %q, want moved aside: %v", start, s.Recovered, wantMoved)
				}
				if wantMoved {
					if want := path + ".corrupt-20260304T050607Z"; s.Recovered != want {
						t.Errorf("moved to %s, want %s", s.Recovered, want)
					}
					moved, err := os.ReadFile(s.Recovered)
					if err != nil || !bytes.Equal(moved, orig) {
						t.Errorf("the corrupt file was not kept byte for byte (%v)", err)
					}
					if n := counterValue(t, reg, "hearth_store_corruptions_total"); n != 1 {
						t.Errorf("hearth_store_corruptions_total = %v, want 1", n)
					}
					if n := s.Corruptions(); n != 1 {
						t.Errorf("Corruptions() = %d, want 1", n)
					}
				}
				if err := s.Check(); err != nil {
					t.Fatalf("start %d: the fresh store fails its check: %v", start, err)
				}
				if err := device.Commit(context.Background(), s, []device.Reading{reading("f", uint64(start), 1, 1)}); err != nil {
					t.Fatalf("start %d: fresh store refuses readings: %v", start, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// Opening a bbolt file that is not a hearth store is a clear error and leaves it as
// it was, even when it is damaged in a way a check would find.
func TestForeignFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err })
	db.Close()
	before, _ := os.ReadFile(path)
	_, err = Open(path, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a hearth store") {
		t.Fatalf("err = %v: want one naming the file and saying it is not a hearth store", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("foreign file modified")
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("foreign file moved aside: %v", m)
	}
}

// counterValue reads a counter from a registry, as /metrics would show it.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
