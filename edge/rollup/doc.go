// Package rollup turns the event log into windowed aggregates per device and signal:
// per local day and hour, count, sum, min, max, mean and last; sessions of binary
// signals (a door-open session: start, duration); activations by hour of day (with
// the day's weekday, an hour × weekday histogram over any window); cycles detected
// from power draw; food-inventory movements.
//
// The package is pure code, no I/O (an import rule holds it so): the Aggregator is
// handed what was persisted and returns what changed. Its subpackage stage is the
// pipeline stage that reads the event log and persists Days and States through
// edge/store in the same transaction as its cursor.
//
// # Time
//
// A reading is placed by its event time (device.Reading.Time: the device's clock when
// ingest trusted it, else the hub's) in the configured local time zone. A session is
// attributed to the local day and hour it started. A reading older than the last one
// of its device and signal still counts in its day's aggregates, but never opens or
// closes a session (Out counts them), so a clock jump cannot invent sessions.
package rollup
