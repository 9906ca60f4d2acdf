package ingest

import (
	"errors"

	"github.com/hearth-iot/hearth/edge/store"
)

// Retryable tells a source whether a refusal reported by this sink (ingest, or the
// store behind it) may pass if the readings are sent again later:
//
//   - store.ErrQuota: the disk quota is full until retention frees space;
//   - store.ErrIntakeStopped: a write failed and the store takes nothing until
//     hearth restarts;
//   - store.ErrClosed: hearth is stopping.
//
// A source leaves such readings unacknowledged, so that the device keeps them and
// sends them again. Any other refusal is final: ErrRejected (a reading ingest can never
// take, such as a timestamp in the year 2201) or store.ErrTooLarge. Sending those again
// would be refused again, for ever, and hold up what the device sends after them, so a
// source acknowledges the message and counts it (see docs/mqtt.md, "Refusals").
//
// Every source takes its decision here: the external-broker source and the serial
// source through their Retryable option (wired by cmd/hearth), the embedded broker by
// default.
func Retryable(err error) bool {
	return errors.Is(err, store.ErrQuota) || errors.Is(err, store.ErrIntakeStopped) || errors.Is(err, store.ErrClosed)
}
