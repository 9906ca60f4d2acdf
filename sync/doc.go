// Package sync is the tree of what leaves the home: summary builds compact per-device
// per-day summaries and tag changes from the store, privacy filters them through the
// household's consent and pseudonymises identifiers, outbox batches and delivers them
// through a transport, deleting them only after the transport acknowledges.
//
// Raw readings never leave: nothing in this tree reads the event log.
package sync
