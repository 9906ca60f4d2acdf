package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/transport"
)

// flaky is a transport that fails while down is set and records what it delivered.
type flaky struct {
	down    bool
	batches []transport.Batch
}

func (f *flaky) Name() string { return "flaky" }
func (f *flaky) Close() error { return nil }
func (f *flaky) WriteBatch(_ context.Context, b transport.Batch) error {
	if f.down {
		return errors.New("uplink down")
	}
	f.batches = append(f.batches, b)
	return nil
}

func fill(t *testing.T, st *store.Store, n int, at time.Time) {
	t.Helper()
	if err := st.Update(func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			seq, err := tx.NextSeq(store.Outbox)
			if err != nil {
				return err
			}
			v := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
			v = append(v, fmt.Sprintf(`{"n":%d}`, seq)...)
			if err := tx.Put(store.Outbox, store.Key(seq), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestBatchingAndRetry(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := &flaky{}
	ob := New(st, tr, &Options{BatchCount: 10, BatchBytes: 1 << 20, BatchAge: time.Minute})
	now := time.Now()
	ctx := context.Background()

	fill(t, st, 4, now)
	if n, err := ob.Step(ctx, now, false); n != 0 || err != nil {
		t.Fatalf("young, small batch delivered early: n=%d err=%v", n, err)
	}
	if n, _ := ob.Step(ctx, now.Add(2*time.Minute), false); n != 4 {
		t.Fatalf("aged batch: delivered %d, want 4", n)
	}
	fill(t, st, 25, now)
	if n, _ := ob.Step(ctx, now, false); n != 10 {
		t.Fatalf("full batch: delivered %d, want 10 (batch_count)", n)
	}
	// Uplink down: the batch stays, the failure is reported, nothing is lost.
	tr.down = true
	if n, err := ob.Step(ctx, now, true); n != 0 || err == nil {
		t.Fatalf("down uplink: n=%d err=%v", n, err)
	}
	if p := ob.Pending(); p != 15 {
		t.Fatalf("pending after failure = %d, want 15", p)
	}
	// Backoff: no attempt before the retry time, even when the uplink is back.
	tr.down = false
	if n, _ := ob.Step(ctx, now.Add(100*time.Millisecond), false); n != 0 {
		t.Fatalf("retried inside the backoff: %d", n)
	}
	total, err := ob.Flush(ctx)
	if err != nil || total != 15 || ob.Pending() != 0 {
		t.Fatalf("flush: %d %v, pending %d", total, err, ob.Pending())
	}
	seen := map[string]bool{}
	msgs := 0
	for _, b := range tr.batches {
		if seen[b.ID] {
			t.Errorf("batch id %s repeated", b.ID)
		}
		seen[b.ID] = true
		msgs += len(b.Messages)
	}
	if msgs != 29 {
		t.Errorf("delivered %d messages, want 29", msgs)
	}
}

func TestBatchBytesBound(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := &flaky{}
	ob := New(st, tr, &Options{BatchCount: 1000, BatchBytes: 40})
	fill(t, st, 10, time.Now()) // each message is 8 or 9 bytes
	n, _ := ob.Step(context.Background(), time.Now(), false)
	if n == 0 || n == 10 {
		t.Fatalf("batch_bytes did not bound the batch: %d messages", n)
	}
	size := 0
	for _, m := range tr.batches[0].Messages {
		size += len(m)
	}
	if size > 40 {
		t.Errorf("batch of %d bytes exceeds batch_bytes 40", size)
	}
}
