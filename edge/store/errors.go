package store

import "errors"

// Errors returned by the store. Callers branch on them with errors.Is.
var (
	// ErrNotHearth means the file is a database, but not a hearth store; it is left untouched.
	ErrNotHearth = errors.New("not a hearth store")
	// ErrLocked means another process holds the database (is hearth already running?).
	ErrLocked = errors.New("database is locked by another process")
	// ErrClosed is returned for work submitted after Close.
	ErrClosed = errors.New("store closed")
	// ErrQuota means the disk quota is full even after evicting raw readings: new
	// readings are refused until space is freed.
	ErrQuota = errors.New("disk quota exceeded")
	// ErrIntakeStopped means a write or fsync failed (EIO, ENOSPC): the store refuses
	// all further writes rather than risk acknowledging what it may not have kept.
	ErrIntakeStopped = errors.New("intake stopped after a write failure")
	// ErrTooLarge means one submission carries more readings than MaxBatch allows.
	ErrTooLarge = errors.New("submission too large")
	// ErrDiskFull means the store's filesystem lacks the room its next commits may
	// need (Store.Space): the first of them would fail and stop intake.
	ErrDiskFull = errors.New("disk full")
	// ErrSchemaTooNew means the file was written by a newer hearth.
	ErrSchemaTooNew = errors.New("store schema is newer than this hearth")
)
