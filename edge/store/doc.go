// Package store is hearth's durable state on go.etcd.io/bbolt, and the only package
// that imports bbolt.
//
// # Event log
//
// Readings are appended to an event log keyed by a monotonically increasing sequence.
// One writer goroutine group-commits whatever callers Submit: many readings per
// transaction and per fsync, each caller told (done callback) only once its readings
// are durable. Readings a device sends again (same device, boot id and sequence) are
// recognised by a per-device watermark kept in the same transaction, acknowledged, and
// not stored twice.
//
// # Consumers
//
// Rollups, tagging and sync read the log from a cursor they persist in the same
// transaction as what they derive from it (Update, Tx.SetCursor), so after a crash
// each resumes exactly where its last commit left it: nothing is recomputed twice and
// nothing acknowledged is lost.
//
// # Retention and failures
//
// Raw readings expire by age (Expire, Maintain) and are evicted oldest first to stay
// within the disk quota; rollups, tags and the outbox are never evicted. When even
// that cannot make room, new readings are refused with ErrQuota. A write or fsync
// error stops intake (ErrIntakeStopped) rather than being retried blindly.
//
// # Damage
//
// bbolt trusts its file and panics or faults on a damaged page, so Open reads the
// file itself first, as bbolt will (pagefile.go, filecheck.go), and checks every
// record against its bucket's definition (buckets.go). A damaged file is moved aside
// and what is readable of it salvaged into a new store (salvage.go); credentials and
// the install's identity are also kept in a file of their own (keep.go). Never a
// boot loop.
//
// The layout of every bucket and key is in FORMAT.md beside this file.
package store
