package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openT(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Messages, batches and dead letters read back as written, across a reopen; the
// oldest dead letters go beyond the keep; a corrupt record is an error naming it.
func TestDeliveryRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 4, 22, 0, 0, 0, time.UTC)
	m := Message{Enqueued: at.Add(time.Hour), Type: "tag", ID: "abc", Category: "sensitive", Simulated: true, Key: "habit.x", Fold: true,
		At: at, Body: []byte(`{"type":"tag"}`)}
	if err := s.Update(func(tx *Tx) error {
		for range 3 {
			mm := m
			if err := tx.Enqueue(&mm); err != nil {
				return err
			}
		}
		b := Batch{ID: "b1", Created: at, Attempts: 2, Next: at.Add(time.Minute), Bytes: 321, LastErr: "503", Messages: []Message{m, m}}
		if err := tx.PutBatch(&b); err != nil {
			return err
		}
		for i := range 4 {
			if _, err := tx.PutDeadLetter(&DeadLetter{At: at, Reason: fmt.Sprint("r", i), Detail: "400", Batch: b}, 3); err != nil {
				return err
			}
		}
		return tx.SetDeliveryState(DeliveryState{LastSuccess: at, HourBytes: 99, Delivered: 7})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(filepath.Join(dir, "h.db"), nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.View(func(tx *Tx) error {
		var got []Message
		if err := tx.Queued(2, func(q Message) error { got = append(got, q); return nil }); err != nil {
			t.Fatal(err)
		}
		want := m
		want.Seq = 2
		if len(got) != 2 || got[0].Seq != 2 || !reflect.DeepEqual(got[0], want) && !(got[0].Enqueued.Equal(want.Enqueued) && got[0].ID == want.ID) {
			t.Errorf("queued from 2: %+v", got)
		}
		if got[0].Category != "sensitive" || !got[0].Simulated || !got[0].Fold || got[0].Key != "habit.x" || !got[0].At.Equal(at) || string(got[0].Body) != `{"type":"tag"}` {
			t.Errorf("message read back as %+v", got[0])
		}
		var bs []Batch
		_ = tx.Batches(func(b Batch) error { bs = append(bs, b); return nil })
		if len(bs) != 1 || bs[0].ID != "b1" || bs[0].Attempts != 2 || bs[0].Bytes != 321 || len(bs[0].Messages) != 2 || bs[0].Messages[1].ID != "abc" {
			t.Errorf("batches %+v", bs)
		}
		var reasons []string
		_ = tx.DeadLetters(func(d DeadLetter) error { reasons = append(reasons, d.Reason); return nil })
		if fmt.Sprint(reasons) != "[r1 r2 r3]" {
			t.Errorf("dead letters %v, want the 3 newest", reasons)
		}
		st, _ := tx.OutboxStats()
		if st.Queued != 3 || st.Batches != 1 || st.BatchMessages != 2 || st.DeadLetters != 3 || !st.Oldest.Equal(at.Add(time.Hour)) {
			t.Errorf("stats %+v", st)
		}
		ds, _ := tx.DeliveryState()
		if ds.Delivered != 7 || ds.HourBytes != 99 || !ds.LastSuccess.Equal(at) {
			t.Errorf("delivery state %+v", ds)
		}
		return nil
	})
	// A corrupt record: an error that names the bucket and sequence.
	_ = s.Update(func(tx *Tx) error { return tx.tx.Bucket(bucketQueue).Put(u64key(9), []byte{0x01, 0xff}) })
	err = s.View(func(tx *Tx) error { return tx.Queued(0, func(Message) error { return nil }) })
	if !errors.Is(err, ErrCorruptOutbox) || err.Error() == "" || !strings.Contains(err.Error(), "sync.queue 9") {
		t.Errorf("corrupt record: %v", err)
	}
}

// The records of the legacy outbox are handed over in order and deleted.
func TestLegacyOutboxTakenOver(t *testing.T) {
	s := openT(t)
	at := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	_ = s.Update(func(tx *Tx) error {
		for i := range 3 {
			v := binary.BigEndian.AppendUint64(nil, uint64(at.Add(time.Duration(i)*time.Second).UnixNano()))
			if err := tx.put(Outbox, Key(uint64(i+1)), append(v, fmt.Sprintf(`{"id":"m%d"}`, i)...)); err != nil {
				return err
			}
		}
		return nil
	})
	var got []string
	if err := s.Update(func(tx *Tx) error {
		return tx.LegacyOutbox(func(enq time.Time, body []byte) error {
			got = append(got, enq.UTC().Format("05")+string(body))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != `[00{"id":"m0"} 01{"id":"m1"} 02{"id":"m2"}]` {
		t.Errorf("taken over: %v", got)
	}
	_ = s.View(func(tx *Tx) error {
		if n := tx.count(Outbox); n != 0 {
			t.Errorf("%d legacy records left", n)
		}
		return nil
	})
}
