package store

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// The buckets of a store, in one place: what each holds, who writes it, what a
// record of it must look like, and what salvage does with it. Creation (init),
// the check at Open and Check, Tx.Put and salvage all read this table; FORMAT.md
// describes the same buckets for people. Erasure (erase.go) reads it too: a bucket
// added here is erased by `hearth forget --household`, and by `--device` where its
// records name the device.

// bucketDef is what the store knows of one bucket.
type bucketDef struct {
	name  string
	owner string // who writes it
	holds string // what one record is
	// check reports a record the store would not have written: a key or value of
	// the wrong shape (a damaged page, read as if it were sound). nil: any bytes.
	check func(k, v []byte) error
	// v2 checks a record as schema 2 and before wrote it, and upgrade makes it
	// what this schema writes (nil: the record is the same in every schema).
	// Open migrates such a file; salvage upgrades what it copies from one.
	v2      func(k, v []byte) error
	upgrade func(k, v []byte) []byte
	// seqKeyed: keys are 8-byte big-endian sequences from the bucket's NextSeq;
	// salvage sets the sequence of the new bucket past every key it recovered.
	seqKeyed bool
	// salvage: how salvage.go recovers the bucket (salvageAll unless said).
	salvage salvagePolicy
	// durable: an Update that writes this bucket commits the batch before it
	// returns (checkpoint.go): records that are seen outside the hub or by the
	// user — delivered outbox messages, credentials, the audit trail — are rare
	// and must not be lost with a batch.
	durable bool
}

// salvagePolicy says what salvage copies from a bucket of a damaged file.
type salvagePolicy int

const (
	salvageAll  salvagePolicy = iota // every record that passes check
	salvageMeta                      // the identity keys only (salvageMetaKeys)
)

// bucketDefs is every bucket of schema SchemaVersion, in the order Open creates them.
var bucketDefs = []bucketDef{
	{name: "meta", owner: "store", holds: "the store's identity and layout: magic, schema, install id, secret, …",
		check: checkMetaRecord, salvage: salvageMeta},
	{name: "events", owner: "store", holds: "the event log: u64be seq → event record (codec.go)", check: checkEventRecord},
	{name: "dedupe", owner: "store", holds: "device NUL u64be boot → sealed dedupe watermark (dedupe.go, seal.go)", check: checkDedupeRecord,
		v2: checkDedupeV2, upgrade: seal},
	{name: "devices", owner: "store", holds: "device id → JSON DeviceInfo", check: checkDeviceRecord},
	{name: "cursors", owner: "consumers", holds: "consumer name → sealed u64be position (seal.go)", check: checkCursorRecord,
		v2: checkCursorV2, upgrade: seal},
	{name: "rollups", owner: "edge/rollup", holds: "date NUL device NUL signal → JSON rollup.Day", check: checkJSONValue},
	{name: "state", owner: "edge/rollup and other stages", holds: "stage NUL … → JSON state", check: checkJSONValue},
	{name: "tags", owner: "edge/tagging", holds: "tag name → JSON tagging.Tag", check: checkJSONValue},
	{name: "taglog", owner: "edge/tagging", holds: "u64be seq → JSON tagging.Change", check: checkSeqJSON, seqKeyed: true},
	{name: "outbox", owner: "sync", holds: "u64be seq → u64be enqueue ns ‖ JSON message", check: checkOutboxRecord, seqKeyed: true,
		durable: true},
	{name: "audit", owner: "all", holds: "u64be seq → JSON {event, detail}", check: checkSeqJSON, seqKeyed: true, durable: true},
	{name: "credentials", owner: "edge/broker, cmd/hearth", holds: "device/<id> or accepted/<name> → JSON (hashes only)", check: checkJSONValue,
		durable: true},
	// Upstream delivery (outbox.go).
	{name: "sync.queue", owner: "sync/summary, sync/outbox", holds: "u64be seq → message record (outbox.go)", check: checkQueueRecord, seqKeyed: true, durable: true},
	{name: "sync.batches", owner: "sync/outbox", holds: "u64be seq → batch record (outbox.go)", check: checkBatchRecord, seqKeyed: true, durable: true},
	{name: "sync.dead", owner: "sync/outbox", holds: "u64be seq → dead-letter record (outbox.go)", check: checkDeadRecord, seqKeyed: true, durable: true},
	{name: "sync.state", owner: "sync", holds: "delivery, tag NUL <name> → JSON", check: checkJSONValue},
	// The household's rights (privacy.go, erase.go).
	{name: "privacy", owner: "sync/privacy, cmd/hearth", holds: "consent NUL <category>, erase NUL u64be, forgotten NUL <pseudonym> → JSON", check: checkPrivacyRecord,
		durable: true},
	{name: "privacy.audit", owner: "sync/outbox, sync/privacy, cmd/hearth", holds: "u64be seq → JSON AuditEntry (what left the home)", check: checkSeqJSON, seqKeyed: true,
		durable: true},
	{name: "privacy.payloads", owner: "sync/outbox", holds: "u64be seq of its audit entry → the payload as sent", check: checkPayloadRecord, durable: true},
}

// bucketDefOf returns the definition of the named bucket.
func bucketDefOf(name string) (bucketDef, bool) {
	for _, d := range bucketDefs {
		if d.name == name {
			return d, true
		}
	}
	return bucketDef{}, false
}

// salvageMetaKeys are the meta keys salvage carries into the new store: the
// install's identity (so that its pseudonyms upstream do not change: salvage.go),
// its history of corruptions, and how far the derived records go.
var salvageMetaKeys = []string{"install_id", "secret", "created", "corruptions", "derived_seq", "evicted_seq"} // secret: a store not yet migrated (its key still in meta)

func checkMetaRecord(k, v []byte) error {
	switch string(k) {
	case "magic":
		if string(v) != magic {
			return fmt.Errorf("magic %q", v)
		}
	case "schema", "corruptions", "derived_seq", "evicted_seq":
		if len(v) != 8 {
			return fmt.Errorf("%s of %d bytes, want 8", k, len(v))
		}
	case "install_id":
		if _, err := hex.DecodeString(string(v)); err != nil || len(v) != 32 {
			return fmt.Errorf("install_id %q is not 32 hex digits", v)
		}
	case "secret":
		if len(v) != 32 {
			return fmt.Errorf("secret of %d bytes, want 32", len(v))
		}
	case "created":
		if _, err := time.Parse(time.RFC3339, string(v)); err != nil {
			return fmt.Errorf("created: %w", err)
		}
	default:
		return fmt.Errorf("unknown key %q", k)
	}
	return nil
}

func checkEventRecord(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want 8", len(k))
	}
	return checkEvent(v)
}

func checkDedupeRecord(k, v []byte) error {
	b, err := unseal(k, v)
	if err != nil {
		return err
	}
	return checkDedupeV2(k, b)
}

// checkDedupeV2 checks a dedupe record as schema 2 and before wrote it (unsealed).
func checkDedupeV2(k, v []byte) error {
	if _, ok := parseDedupeKey(k); !ok {
		return errors.New("key is not device NUL boot")
	}
	w, err := decodeWatermarkV2(v)
	if err != nil {
		return err
	}
	if len(w.above) > maxAbove {
		return fmt.Errorf("%d sequences above the watermark, at most %d", len(w.above), maxAbove)
	}
	prev := w.low + 1
	for _, s := range w.above {
		if s <= prev {
			return fmt.Errorf("sequence %d above the watermark out of order", s)
		}
		prev = s
	}
	return nil
}

func checkDeviceRecord(k, v []byte) error {
	if err := checkJSONValue(k, v); err != nil {
		return err
	}
	var d DeviceInfo
	if err := json.Unmarshal(v, &d); err != nil {
		return err
	}
	if d.ID != string(k) {
		return fmt.Errorf("record of device %q under key %q", d.ID, k)
	}
	return nil
}

func checkCursorRecord(k, v []byte) error {
	if len(k) == 0 {
		return errors.New("cursor without a name")
	}
	_, err := parseCursor(k, v)
	return err
}

// checkCursorV2 checks a cursor as schema 2 and before wrote it (unsealed).
func checkCursorV2(k, v []byte) error {
	if len(k) == 0 || len(v) != 8 {
		return fmt.Errorf("cursor %q of %d bytes, want 8", k, len(v))
	}
	return nil
}

// checkJSONValue: the value is one JSON document in valid UTF-8 (as encoding/json
// writes it).
func checkJSONValue(_, v []byte) error {
	if !json.Valid(v) || !utf8.Valid(v) {
		return errors.New("value is not JSON")
	}
	return nil
}

func checkSeqJSON(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want an 8-byte sequence", len(k))
	}
	return checkJSONValue(k, v)
}

func checkOutboxRecord(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("key of %d bytes, want an 8-byte sequence", len(k))
	}
	if len(v) < 8 {
		return fmt.Errorf("value of %d bytes: no enqueue time", len(v))
	}
	return checkJSONValue(k, v[8:])
}

// checkOf returns the check of records of a file of the given schema.
func (d bucketDef) checkOf(schema uint64) func(k, v []byte) error {
	if schema < 3 && d.v2 != nil {
		return d.v2
	}
	return d.check
}
