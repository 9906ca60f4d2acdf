package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The records of upstream delivery (sync/outbox owns them; FORMAT.md, "Upstream
// delivery"): messages waiting to be batched, batches formed and waiting for their
// acknowledgement, batches the receiver refused for good, and delivery's own state.
// Each has typed operations here and nowhere else: sync never reads these buckets
// through Get/Put.
var (
	bucketQueue    = []byte("sync.queue")   // u64be seq → message record
	bucketBatches  = []byte("sync.batches") // u64be seq → batch record
	bucketDead     = []byte("sync.dead")    // u64be seq → dead-letter record
	bucketSyncMeta = []byte("sync.state")   // name → JSON
	bucketLegacy   = []byte("outbox")       // the schema-2 outbox, taken over by sync.queue
)

// ErrCorruptOutbox is returned when a delivery record cannot be decoded.
var ErrCorruptOutbox = errors.New("corrupt outbox record")

const outboxVersion = 1

// Message is one message waiting to go upstream. Its Body is encoded by its maker
// (sync/summary: JSON); the rest is what delivery needs without decoding it.
type Message struct {
	Seq       uint64    // its place in the queue (assigned by Enqueue)
	Enqueued  time.Time // hub time it was made
	Type      string    // device_day, tag, profile, health
	ID        string    // deterministic message id (the receiver de-duplicates on it)
	Category  string    // consent category it needs to leave: usage, sensitive
	Simulated bool      // from the agent's simulated household: leaves without consent
	// Key groups messages that may be folded under pressure: a message with Fold set
	// may be dropped in favour of a later queued message of the same Type and Key
	// (a tag's score change superseded by its next one).
	Key  string
	Fold bool
	At   time.Time // when what it summarises happened
	Body []byte
}

func appendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, outboxVersion)
	dst = binary.AppendUvarint(dst, m.Seq)
	dst = binary.AppendVarint(dst, unixNano(m.Enqueued))
	dst = appendString(dst, m.Type)
	dst = appendString(dst, m.ID)
	dst = appendString(dst, m.Category)
	var flags byte
	if m.Simulated {
		flags |= 1
	}
	if m.Fold {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = appendString(dst, m.Key)
	dst = binary.AppendVarint(dst, unixNano(m.At))
	return appendString(dst, string(m.Body))
}

func (d *decoder) message() Message {
	var m Message
	if d.err != nil {
		return m
	}
	if len(d.b) == 0 || d.b[0] != outboxVersion {
		d.err = ErrCorruptOutbox
		return m
	}
	d.b = d.b[1:]
	m.Seq = d.uvarint()
	m.Enqueued = fromUnixNano(d.varint())
	m.Type = d.str(nil)
	m.ID = d.str(nil)
	m.Category = d.str(nil)
	if d.err == nil && len(d.b) == 0 {
		d.err = ErrCorruptOutbox
	}
	if d.err == nil {
		m.Simulated, m.Fold = d.b[0]&1 != 0, d.b[0]&2 != 0
		d.b = d.b[1:]
	}
	m.Key = d.str(nil)
	m.At = fromUnixNano(d.varint())
	m.Body = []byte(d.str(nil))
	return m
}

func decodeMessage(b []byte) (Message, error) {
	d := decoder{b: b}
	m := d.message()
	if d.err != nil {
		return Message{}, fmt.Errorf("%w: message: %v", ErrCorruptOutbox, d.err)
	}
	return m, nil
}

// The checks of the delivery records (buckets.go): a record the store would not
// have written is damage.
func checkQueueRecord(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want 8", len(k))
	}
	_, err := decodeMessage(v)
	return err
}

func checkBatchRecord(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want 8", len(k))
	}
	_, err := decodeBatch(v)
	return err
}

func checkDeadRecord(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want 8", len(k))
	}
	_, err := decodeDead(k, v)
	return err
}

// Enqueue appends m to the queue, setting m.Seq.
func (t *Tx) Enqueue(m *Message) error {
	seq, err := t.rawNextSeq(string(bucketQueue))
	if err != nil {
		return err
	}
	m.Seq = seq
	return t.rawPut(string(bucketQueue), u64key(seq), appendMessage(nil, m))
}

// Queued calls fn for every queued message from sequence from on, oldest first, until
// fn returns an error (ErrStopRange ends the scan without one). A record that cannot
// be decoded is an error wrapping ErrCorruptOutbox that names its sequence.
func (t *Tx) Queued(from uint64, fn func(Message) error) error {
	c := t.tx.Bucket(bucketQueue).Cursor()
	for k, v := c.Seek(u64key(from)); k != nil; k, v = c.Next() {
		m, err := decodeMessage(v)
		if err != nil {
			return fmt.Errorf("store: sync.queue %d: %w", seqOf(k), err)
		}
		if err := fn(m); err != nil {
			if errors.Is(err, ErrStopRange) {
				return nil
			}
			return err
		}
	}
	return nil
}

// Dequeue removes the queued message seq (gone into a batch, folded or withheld).
func (t *Tx) Dequeue(seq uint64) error { return t.rawDel(string(bucketQueue), u64key(seq)) }

// LegacyOutbox calls fn for each record of the schema-2 outbox bucket (u64be enqueue
// ns ‖ JSON, written by hearth before the delivery records) and deletes it: the
// caller re-enqueues what it makes of it in the same transaction.
func (t *Tx) LegacyOutbox(fn func(enqueued time.Time, body []byte) error) error {
	b := t.tx.Bucket(bucketLegacy)
	var keys [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		if len(v) < 8 {
			return nil // unreadable: nothing to deliver
		}
		return fn(time.Unix(0, int64(binary.BigEndian.Uint64(v))), append([]byte(nil), v[8:]...))
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.rawDel(string(bucketLegacy), k); err != nil {
			return err
		}
	}
	return nil
}

// Batch is a set of messages formed once and delivered as one: every attempt sends
// the same ID and the same Messages, in order.
type Batch struct {
	Seq      uint64 // its place among batches (assigned by PutBatch when 0)
	ID       string
	Created  time.Time
	Attempts uint32
	Next     time.Time // no attempt before this
	Bytes    int       // its size on the wire, as measured when it was formed
	LastErr  string    // why the last attempt failed
	Messages []Message
}

func appendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, outboxVersion)
	dst = binary.AppendUvarint(dst, b.Seq)
	dst = appendString(dst, b.ID)
	dst = binary.AppendVarint(dst, unixNano(b.Created))
	dst = binary.AppendUvarint(dst, uint64(b.Attempts))
	dst = binary.AppendVarint(dst, unixNano(b.Next))
	dst = binary.AppendUvarint(dst, uint64(b.Bytes))
	dst = appendString(dst, b.LastErr)
	dst = binary.AppendUvarint(dst, uint64(len(b.Messages)))
	for i := range b.Messages {
		dst = appendMessage(dst, &b.Messages[i])
	}
	return dst
}

func (d *decoder) batch() Batch {
	var b Batch
	if len(d.b) == 0 || d.b[0] != outboxVersion {
		d.err = ErrCorruptOutbox
		return b
	}
	d.b = d.b[1:]
	b.Seq = d.uvarint()
	b.ID = d.str(nil)
	b.Created = fromUnixNano(d.varint())
	b.Attempts = uint32(d.uvarint())
	b.Next = fromUnixNano(d.varint())
	b.Bytes = int(d.uvarint())
	b.LastErr = d.str(nil)
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = ErrCorruptOutbox
		return b
	}
	b.Messages = make([]Message, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		b.Messages = append(b.Messages, d.message())
	}
	return b
}

func decodeBatch(v []byte) (Batch, error) {
	d := decoder{b: v}
	b := d.batch()
	if d.err != nil {
		return Batch{}, fmt.Errorf("%w: batch: %v", ErrCorruptOutbox, d.err)
	}
	return b, nil
}

// PutBatch writes b: a new batch (Seq 0) gets the next sequence, after every batch
// before it; an existing one (its attempts, next time, error) is rewritten in place.
func (t *Tx) PutBatch(b *Batch) error {
	if b.Seq == 0 {
		seq, err := t.rawNextSeq(string(bucketBatches))
		if err != nil {
			return err
		}
		b.Seq = seq
	}
	return t.rawPut(string(bucketBatches), u64key(b.Seq), appendBatch(nil, b))
}

// Batches calls fn for every formed batch, oldest first, until fn returns an error
// (ErrStopRange ends the scan without one).
func (t *Tx) Batches(fn func(Batch) error) error {
	c := t.tx.Bucket(bucketBatches).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		b, err := decodeBatch(v)
		if err != nil {
			return fmt.Errorf("store: sync.batches %d: %w", seqOf(k), err)
		}
		if err := fn(b); err != nil {
			if errors.Is(err, ErrStopRange) {
				return nil
			}
			return err
		}
	}
	return nil
}

// DeleteBatch removes batch seq: acknowledged, or moved to the dead letters.
func (t *Tx) DeleteBatch(seq uint64) error { return t.rawDel(string(bucketBatches), u64key(seq)) }

// DeadLetter is a batch the receiver refused for good (or that could never be sent),
// kept for a person to look at; it never blocks the batches after it.
type DeadLetter struct {
	Seq    uint64
	At     time.Time // hub time it was refused
	Reason string    // a short class: rejected_400, too_large, ...
	Detail string    // what the receiver said
	Batch  Batch
}

// PutDeadLetter appends d (setting d.Seq) and deletes the oldest dead letters beyond
// keep (0: keep all); it returns how many it deleted.
func (t *Tx) PutDeadLetter(d *DeadLetter, keep int) (int, error) {
	bk := t.tx.Bucket(bucketDead)
	seq, err := t.rawNextSeq(string(bucketDead))
	if err != nil {
		return 0, err
	}
	d.Seq = seq
	v := append([]byte{outboxVersion}, binary.AppendVarint(nil, unixNano(d.At))...)
	v = appendString(v, d.Reason)
	v = appendString(v, d.Detail)
	v = appendBatch(v, &d.Batch)
	if err := t.rawPut(string(bucketDead), u64key(seq), v); err != nil {
		return 0, err
	}
	// Counted with a cursor: a bucket's Stats do not see this transaction's writes.
	n := keyCount(bk.Cursor())
	var old [][]byte
	c := bk.Cursor()
	for k, _ := c.First(); k != nil && keep > 0 && n-len(old) > keep; k, _ = c.Next() {
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range old {
		if err := t.rawDel(string(bucketDead), k); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

func keyCount(c *bolt.Cursor) int {
	n := 0
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// DeadLetters calls fn for every dead letter, oldest first.
func (t *Tx) DeadLetters(fn func(DeadLetter) error) error {
	return t.tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
		dl, err := decodeDead(k, v)
		if err != nil {
			return fmt.Errorf("store: sync.dead %d: %w", seqOf(k), err)
		}
		return fn(dl)
	})
}

func decodeDead(k, v []byte) (DeadLetter, error) {
	d := decoder{b: v}
	var dl DeadLetter
	if len(d.b) == 0 || d.b[0] != outboxVersion {
		return dl, ErrCorruptOutbox
	}
	d.b = d.b[1:]
	dl.Seq = seqOf(k)
	dl.At = fromUnixNano(d.varint())
	dl.Reason = d.str(nil)
	dl.Detail = d.str(nil)
	dl.Batch = d.batch()
	if d.err != nil {
		return DeadLetter{}, fmt.Errorf("%w: dead letter: %v", ErrCorruptOutbox, d.err)
	}
	return dl, nil
}

// OutboxStats is what waits to go upstream.
type OutboxStats struct {
	Queued        int       // messages not yet in a batch
	QueuedBytes   int       // their bodies' bytes
	Batches       int       // batches formed, not yet acknowledged
	BatchMessages int       // messages in them
	BatchBytes    int       // their wire bytes
	DeadLetters   int       // batches refused for good
	Oldest        time.Time // enqueue time of the oldest message not acknowledged (zero: none)
}

// OutboxStats counts the queue, the batches and the dead letters.
func (t *Tx) OutboxStats() (OutboxStats, error) {
	var s OutboxStats
	oldest := func(at time.Time) {
		if !at.IsZero() && (s.Oldest.IsZero() || at.Before(s.Oldest)) {
			s.Oldest = at
		}
	}
	err := t.Batches(func(b Batch) error {
		s.Batches++
		s.BatchMessages += len(b.Messages)
		s.BatchBytes += b.Bytes
		for i := range b.Messages {
			oldest(b.Messages[i].Enqueued)
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	if err := t.Queued(0, func(m Message) error {
		s.Queued++
		s.QueuedBytes += len(m.Body)
		oldest(m.Enqueued)
		return nil
	}); err != nil {
		return s, err
	}
	s.DeadLetters = keyCount(t.tx.Bucket(bucketDead).Cursor())
	// Records of the schema-2 outbox not yet taken over count as queued.
	_ = t.tx.Bucket(bucketLegacy).ForEach(func(_, v []byte) error {
		s.Queued++
		if len(v) >= 8 {
			s.QueuedBytes += len(v) - 8
			oldest(time.Unix(0, int64(binary.BigEndian.Uint64(v))))
		}
		return nil
	})
	return s, nil
}

// DeliveryState is what delivery keeps across restarts.
type DeliveryState struct {
	OutageSince time.Time `json:"outage_since,omitzero"` // first failure of the current run of failures
	LastSuccess time.Time `json:"last_success,omitzero"`
	HourStart   time.Time `json:"hour_start,omitzero"` // start of the bandwidth window
	HourBytes   int64     `json:"hour_bytes"`          // wire bytes sent in it
	Delivered   uint64    `json:"delivered"`           // messages acknowledged, ever
}

var keyDelivery = []byte("delivery")

// DeliveryState returns delivery's state (zero when none was saved).
func (t *Tx) DeliveryState() (DeliveryState, error) {
	var s DeliveryState
	v := t.tx.Bucket(bucketSyncMeta).Get(keyDelivery)
	if v == nil {
		return s, nil
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return DeliveryState{}, fmt.Errorf("store: sync.state delivery: %w: %v", ErrCorruptOutbox, err)
	}
	return s, nil
}

// SetDeliveryState saves s.
func (t *Tx) SetDeliveryState(s DeliveryState) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.rawPut(string(bucketSyncMeta), keyDelivery, v)
}

// SentTag is what was last sent upstream about a tag.
type SentTag struct {
	Score  float64 `json:"score"`
	Active bool    `json:"active"`
	Status string  `json:"status"`
}

func sentTagKey(name string) []byte { return append([]byte("tag\x00"), name...) }

// SentTag returns what was last sent about tag name; ok is false if nothing was.
func (t *Tx) SentTag(name string) (s SentTag, ok bool, err error) {
	v := t.tx.Bucket(bucketSyncMeta).Get(sentTagKey(name))
	if v == nil {
		return s, false, nil
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, false, fmt.Errorf("store: sync.state tag %s: %w: %v", name, ErrCorruptOutbox, err)
	}
	return s, true, nil
}

// SetSentTag records what was sent about tag name.
func (t *Tx) SetSentTag(name string, s SentTag) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.rawPut(string(bucketSyncMeta), sentTagKey(name), v)
}

// SentTags returns what was last sent about every tag (for the household profile).
func (t *Tx) SentTags() (map[string]SentTag, error) {
	out := map[string]SentTag{}
	c := t.tx.Bucket(bucketSyncMeta).Cursor()
	prefix := []byte("tag\x00")
	for k, v := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
		var s SentTag
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("store: sync.state %q: %w: %v", k, ErrCorruptOutbox, err)
		}
		out[string(k[len(prefix):])] = s
	}
	return out, nil
}
