package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Typed records: each bucket's records are read and written through the typed views
// of the file that defines them (rollups.go, tags.go, …); FORMAT.md documents every
// one. What follows is what they share: the error of a record that cannot be read,
// and its quarantine.

// RecordError is a record the store holds but cannot read as what its bucket says it
// is: written by a damaged page that still passed the page check, or by a bug. The
// reader quarantines it (Tx.Quarantine) rather than stall on it or silently start it
// afresh.
type RecordError struct {
	Bucket Bucket
	Key    []byte
	Err    error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("store: %s record %q unreadable: %v", e.Bucket, e.Key, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Quarantine removes the unreadable record e names from its bucket and keeps its
// bytes in the audit trail (event record_quarantined: bucket, key, reason, value in
// base64, time), counted in hearth_store_records_quarantined_total{bucket}. The
// stage that owns the record then rebuilds it from what it still has.
func (t *Tx) Quarantine(e *RecordError) error {
	b := t.bucket(e.Bucket)
	v := b.Get(e.Key)
	if err := t.Audit("record_quarantined", map[string]string{"bucket": string(e.Bucket), "key": fmt.Sprintf("%q", e.Key),
		"reason": e.Err.Error(), "value_base64": base64.StdEncoding.EncodeToString(v), "at": time.Now().UTC().Format(time.RFC3339)}); err != nil {
		return err
	}
	if err := t.del(e.Bucket, e.Key); err != nil {
		return err
	}
	t.quarantined = append(t.quarantined, e.Bucket)
	return nil
}

// put stores a record after the check of its bucket (bucketDefs): a record of the
// wrong shape is refused, or the check at Open would take it for damage.
func (t *Tx) put(b Bucket, key, val []byte) error {
	if d, ok := bucketDefOf(string(b)); ok && d.check != nil {
		if err := d.check(key, val); err != nil {
			return fmt.Errorf("store: %s %q: %w", b, key, err)
		}
	}
	return t.putUnchecked(b, key, val)
}

// putUnchecked is put without the bucket's check, for bytes that pass it by
// construction.
func (t *Tx) putUnchecked(b Bucket, key, val []byte) error {
	t.bucket(b)
	return t.rawPut(string(b), key, val)
}

func (t *Tx) del(b Bucket, key []byte) error {
	t.bucket(b)
	return t.rawDel(string(b), key)
}

// putJSON stores v as a JSON record.
func (t *Tx) putJSON(b Bucket, key []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s %q: %w", b, key, err)
	}
	return t.put(b, key, buf)
}

// getJSON reads the JSON record of key into v; false without one, a *RecordError for
// one that does not decode.
func (t *Tx) getJSON(b Bucket, key []byte, v any) (bool, error) {
	raw := t.bucket(b).Get(key)
	if raw == nil {
		return false, nil
	}
	if err := decodeRecord(raw, v); err != nil {
		return false, &RecordError{Bucket: b, Key: append([]byte(nil), key...), Err: err}
	}
	return true, nil
}

// StageState is the state bucket's part of one stage (keys "owner NUL …"): records
// only that stage reads and writes, in an encoding it defines (edge/rollup keeps its
// open sessions and detectors there). Other stages never read them.
type StageState struct {
	t     *Tx
	owner string
}

// StateOf returns the part of the state bucket that owner keeps.
func (t *Tx) StateOf(owner string) StageState { return StageState{t: t, owner: owner} }

func (s StageState) key(k string) []byte { return []byte(s.owner + "\x00" + k) }

// Get returns the record of k (nil without one). It is valid only inside the
// transaction.
func (s StageState) Get(k string) []byte { return s.t.bucket(State).Get(s.key(k)) }

// Put stores the record of k (JSON, as the state bucket's check requires).
func (s StageState) Put(k string, v []byte) error { return s.t.put(State, s.key(k), v) }

// Each calls fn for every record of the stage, in key order, until fn returns an
// error.
func (s StageState) Each(fn func(k string, v []byte) error) error {
	prefix := []byte(s.owner + "\x00")
	c := s.t.bucket(State).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(string(k[len(prefix):]), v); err != nil {
			return err
		}
	}
	return nil
}

// Unreadable makes the RecordError of the stage's record k.
func (s StageState) Unreadable(k string, err error) *RecordError {
	return &RecordError{Bucket: State, Key: s.key(k), Err: err}
}
