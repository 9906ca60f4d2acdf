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
// error stops intake (ErrIntakeStopped) rather than being retried blindly. A corrupt
// file is moved aside at Open and a fresh store started, never a boot loop.
//
// The layout of every bucket and key is in FORMAT.md beside this file.
package store
