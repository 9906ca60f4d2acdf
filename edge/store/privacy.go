package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The household's rights (sync/privacy owns these records; FORMAT.md, "Privacy"):
// its consent decisions, erasure requests waiting for the agent's restart, the
// pseudonyms of devices it had forgotten, and the audit of what left the home with
// the exact payloads sent.
var (
	bucketPrivacy  = []byte("privacy")          // consent NUL <category>, erase NUL u64be, forgotten NUL <pseudonym> → JSON
	bucketPrivAud  = []byte("privacy.audit")    // u64be seq → JSON AuditEntry
	bucketPayloads = []byte("privacy.payloads") // u64be seq (of its audit entry) → the payload as sent
)

const (
	consentPrefix   = "consent\x00"
	erasePrefix     = "erase\x00"
	forgottenPrefix = "forgotten\x00"
)

func checkPrivacyRecord(k, v []byte) error {
	switch {
	case bytes.HasPrefix(k, []byte(consentPrefix)), bytes.HasPrefix(k, []byte(forgottenPrefix)):
	case bytes.HasPrefix(k, []byte(erasePrefix)):
		if len(k) != len(erasePrefix)+8 {
			return fmt.Errorf("erasure request key of %d bytes", len(k))
		}
	default:
		return fmt.Errorf("unknown key %q", k)
	}
	return checkJSONValue(k, v)
}

func checkPayloadRecord(k, _ []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want 8", len(k))
	}
	return nil
}

// ConsentRecord is the household's decision on one consent category.
type ConsentRecord struct {
	Category string    `json:"category"`
	Granted  bool      `json:"granted"`
	By       string    `json:"by"`
	Via      string    `json:"via"`
	At       time.Time `json:"at"`
}

// ConsentRecords returns the recorded decisions by category.
func (t *Tx) ConsentRecords() (map[string]ConsentRecord, error) {
	out := map[string]ConsentRecord{}
	err := t.privacyEach(consentPrefix, func(k, v []byte) error {
		var r ConsentRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return &RecordError{Bucket: Bucket(bucketPrivacy), Key: bytes.Clone(k), Err: err}
		}
		out[r.Category] = r
		return nil
	})
	return out, err
}

// PutConsent records a decision (replacing the category's earlier one).
func (t *Tx) PutConsent(r ConsentRecord) error {
	return t.privacyPut([]byte(consentPrefix+r.Category), r)
}

// ErasureRequest is a household's request to forget a device or itself, kept until
// the agent carries it out (at its next start: cmd/hearth's forget).
type ErasureRequest struct {
	Seq    uint64    `json:"seq"`
	Scope  string    `json:"scope"`            // "device" or "household"
	Device string    `json:"device,omitempty"` // the local id, for a device
	By     string    `json:"by"`
	Via    string    `json:"via"`
	At     time.Time `json:"at"`
}

// RequestErasure records r (setting r.Seq).
func (t *Tx) RequestErasure(r *ErasureRequest) error {
	seq, err := t.rawNextSeq(string(bucketPrivacy))
	if err != nil {
		return err
	}
	r.Seq = seq
	return t.privacyPut(append([]byte(erasePrefix), u64key(seq)...), r)
}

// PendingErasures returns the erasure requests not yet carried out, oldest first.
func (t *Tx) PendingErasures() ([]ErasureRequest, error) {
	var out []ErasureRequest
	err := t.privacyEach(erasePrefix, func(k, v []byte) error {
		var r ErasureRequest
		if err := json.Unmarshal(v, &r); err != nil {
			return &RecordError{Bucket: Bucket(bucketPrivacy), Key: bytes.Clone(k), Err: err}
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// ErasureDone deletes the request seq.
func (t *Tx) ErasureDone(seq uint64) error {
	return t.rawDel(string(bucketPrivacy), append([]byte(erasePrefix), u64key(seq)...))
}

// AddForgotten records that the device of this pseudonym was forgotten (never its
// local id): the agent's simulated household does not bring it back.
func (t *Tx) AddForgotten(pseudonym string, at time.Time) error {
	return t.privacyPut([]byte(forgottenPrefix+pseudonym), map[string]time.Time{"at": at.UTC()})
}

// Forgotten returns the pseudonyms of the forgotten devices.
func (t *Tx) Forgotten() (map[string]bool, error) {
	out := map[string]bool{}
	err := t.privacyEach(forgottenPrefix, func(k, _ []byte) error {
		out[string(k[len(forgottenPrefix):])] = true
		return nil
	})
	return out, err
}

func (t *Tx) privacyPut(k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: privacy %q: %w", k, err)
	}
	return t.rawPut(string(bucketPrivacy), k, b)
}

func (t *Tx) privacyEach(prefix string, fn func(k, v []byte) error) error {
	c := t.tx.Bucket(bucketPrivacy).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Kinds of audit entries.
const (
	AuditDelivery = "delivery" // a batch the receiver acknowledged
	AuditConsent  = "consent"  // a consent decision
	AuditErasure  = "erasure"  // an erasure carried out
	AuditWithheld = "withheld" // queued messages taken out at send for want of consent
)

// AuditEntry is one entry of the audit of what left the home (and of the decisions
// that govern it).
type AuditEntry struct {
	Seq        uint64         `json:"seq"`
	At         time.Time      `json:"at"`
	Kind       string         `json:"kind"`
	Transport  string         `json:"transport,omitempty"`
	Endpoint   string         `json:"endpoint,omitempty"` // the receiver's host
	Batch      string         `json:"batch,omitempty"`
	Categories []string       `json:"categories,omitempty"`
	Messages   int            `json:"messages"`
	Bytes      int            `json:"bytes,omitempty"` // on the wire
	MessageIDs []string       `json:"message_ids,omitempty"`
	Payload    bool           `json:"payload,omitempty"` // the exact payload is kept (AuditPayload)
	Detail     map[string]any `json:"detail,omitempty"`
}

// AppendPrivacyAudit appends e (setting e.Seq and, when payload is not nil, keeping
// it as the exact payload sent).
func (t *Tx) AppendPrivacyAudit(e *AuditEntry, payload []byte) error {
	seq, err := t.rawNextSeq(string(bucketPrivAud))
	if err != nil {
		return err
	}
	e.Seq = seq
	e.Payload = payload != nil
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: privacy.audit: %w", err)
	}
	if err := t.rawPut(string(bucketPrivAud), u64key(seq), v); err != nil {
		return err
	}
	if payload != nil {
		return t.rawPut(string(bucketPayloads), u64key(seq), payload)
	}
	return nil
}

// PrivacyAudit calls fn for every audit entry after seq after, oldest first, until
// fn returns an error (ErrStopRange ends it without one).
func (t *Tx) PrivacyAudit(after uint64, fn func(*AuditEntry) error) error {
	c := t.tx.Bucket(bucketPrivAud).Cursor()
	for k, v := c.Seek(u64key(after + 1)); k != nil; k, v = c.Next() {
		var e AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return &RecordError{Bucket: Bucket(bucketPrivAud), Key: bytes.Clone(k), Err: err}
		}
		e.Payload = t.tx.Bucket(bucketPayloads).Get(k) != nil
		if err := fn(&e); err != nil {
			if errors.Is(err, ErrStopRange) {
				return nil
			}
			return err
		}
	}
	return nil
}

// LastPrivacyAudit returns the sequence of the newest audit entry (0: none).
func (t *Tx) LastPrivacyAudit() uint64 {
	k, _ := t.tx.Bucket(bucketPrivAud).Cursor().Last()
	if len(k) != 8 {
		return 0
	}
	return seqOf(k)
}

// AuditPayload returns the exact payload of audit entry seq; false when it was not
// kept or has expired.
func (t *Tx) AuditPayload(seq uint64) ([]byte, bool) {
	v := t.tx.Bucket(bucketPayloads).Get(u64key(seq))
	return bytes.Clone(v), v != nil
}

// ExpireAudit deletes the audit entries older than keep and the payloads older than
// keepPayload (a zero duration keeps them for ever); it returns how many of each.
func (t *Tx) ExpireAudit(now time.Time, keep, keepPayload time.Duration) (entries, payloads int, err error) {
	var oldEntries, oldPayloads [][]byte
	c := t.tx.Bucket(bucketPrivAud).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var e struct {
			At time.Time `json:"at"`
		}
		if json.Unmarshal(v, &e) != nil {
			continue
		}
		age := now.Sub(e.At)
		if keep > 0 && age > keep {
			oldEntries = append(oldEntries, bytes.Clone(k))
			oldPayloads = append(oldPayloads, bytes.Clone(k))
		} else if keepPayload > 0 && age > keepPayload {
			oldPayloads = append(oldPayloads, bytes.Clone(k))
		} else {
			break // in time order: the rest are younger
		}
	}
	for _, k := range oldEntries {
		if err := t.rawDel(string(bucketPrivAud), k); err != nil {
			return 0, 0, err
		}
	}
	pb := t.tx.Bucket(bucketPayloads)
	for _, k := range oldPayloads {
		if pb.Get(k) != nil {
			if err := t.rawDel(string(bucketPayloads), k); err != nil {
				return 0, 0, err
			}
			payloads++
		}
	}
	return len(oldEntries), payloads, nil
}

// PurgeOutbox takes every queued and batched message that keep refuses out of the
// outbox (a consent withdrawn): a batch left empty is deleted, one left smaller
// is rewritten under the id rename gives its remaining messages (nil: its id is
// kept). It returns how many messages it took out.
func (t *Tx) PurgeOutbox(keep func(*Message) bool, rename func([]Message) string) (int, error) {
	n := 0
	var gone []uint64
	if err := t.Queued(0, func(m Message) error {
		if !keep(&m) {
			gone = append(gone, m.Seq)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, seq := range gone {
		if err := t.Dequeue(seq); err != nil {
			return 0, err
		}
	}
	n += len(gone)
	var batches []Batch
	if err := t.Batches(func(b Batch) error { batches = append(batches, b); return nil }); err != nil {
		return 0, err
	}
	for i := range batches {
		b := &batches[i]
		kept := b.Messages[:0:0]
		for j := range b.Messages {
			if keep(&b.Messages[j]) {
				kept = append(kept, b.Messages[j])
			}
		}
		if len(kept) == len(b.Messages) {
			continue
		}
		n += len(b.Messages) - len(kept)
		if len(kept) == 0 {
			if err := t.DeleteBatch(b.Seq); err != nil {
				return 0, err
			}
			continue
		}
		b.Messages = kept
		if rename != nil {
			b.ID = rename(kept)
		}
		if err := t.PutBatch(b); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// dropMessages deletes every queued, batched and dead-lettered message that drop
// picks (an erasure); batches are renamed as PurgeOutbox does.
func (t *Tx) dropMessages(drop func(*Message) bool, rename func([]Message) string) (int, error) {
	n, err := t.PurgeOutbox(func(m *Message) bool { return !drop(m) }, rename)
	if err != nil {
		return 0, err
	}
	var dead [][]byte
	if err := t.DeadLetters(func(dl DeadLetter) error {
		for i := range dl.Batch.Messages {
			if drop(&dl.Batch.Messages[i]) {
				dead = append(dead, u64key(dl.Seq))
				n += len(dl.Batch.Messages)
				break
			}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := t.rawDel(string(bucketDead), k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// deleteWhere deletes every record of bucket name that pick chooses; it returns how
// many.
func deleteWhere(t *Tx, name []byte, pick func(k, v []byte) bool) (int, error) {
	b := t.tx.Bucket(name)
	var keys [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if v != nil && pick(k, v) {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := t.rawDel(string(name), k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// mentions reports whether the JSON value v names id: a string equal to it, or one
// in which it stands between separators ("device/fridge1", "fridge1.door"), in any
// key or value.
func mentions(v []byte, id string) bool {
	if !bytes.Contains(v, []byte(id)) {
		return false
	}
	var x any
	if json.Unmarshal(v, &x) != nil {
		return true // not JSON, and holds the bytes: count it
	}
	var walk func(any) bool
	named := func(s string) bool {
		for i := 0; ; {
			j := strings.Index(s[i:], id)
			if j < 0 {
				return false
			}
			a, b := i+j, i+j+len(id)
			if (a == 0 || !idChar(s[a-1])) && (b == len(s) || !idChar(s[b])) {
				return true
			}
			i = a + 1
		}
	}
	walk = func(x any) bool {
		switch y := x.(type) {
		case string:
			return named(y)
		case []any:
			for _, e := range y {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for k, e := range y {
				if named(k) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(x)
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
