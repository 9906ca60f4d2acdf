// Package serial is the device.Source for appliances on a UART speaking hearth's
// firmware protocol (firmware-proto/SPEC.md): a fridge main board or a washer
// controller wired to the hub, directly or through a USB serial adapter.
//
// # Port
//
// A Source opens one port with go.bug.st/serial, by path or by USB vendor and product
// id (the library's enumerator), with the configured line settings. A path may be a
// symlink, as udev names USB adapters (/dev/serial/by-id/...): it is resolved again at
// every open, so an adapter unplugged and plugged back in under a new /dev/ttyUSBn is
// found. When the port vanishes or cannot be opened, Run waits with exponential
// back-off and jitter (ReconnectMin … ReconnectMax) and tries again until its context
// ends.
//
// # Protocol, hub side
//
// Run implements the hub's rules of SPEC.md §7–§11:
//   - A Hello opens a session for (device id, boot id); it is answered with an Ack of
//     the boot's contiguous committed prefix (from Options.Committed after a hub
//     restart) and a TimeSync when the hub's clock is set, then hourly.
//   - Readings, Events and Inventory items become device.Readings (SPEC.md §8.2's
//     table) and are handed to the sink in one batch per frame. Items already
//     committed are not handed over again but acknowledged again; an item that fails
//     validation is refused alone (Nack INVALID) and counts as consumed.
//   - The Ack is cumulative and sent only after the sink's done callback reports the
//     batch durable. Items above a hole are stored and the hole is reported once with
//     a Nack SEQ_GAP; a batch the sink refuses for now (Options.Retryable: a full
//     store) gets a Nack BUSY. One it refuses for good (a reading it can never take)
//     is stored as error readings in its place, value RejectedItemCode, and
//     acknowledged, so that the device does not send it for ever. Nacks are rate
//     limited.
//   - Damaged frames are counted by class in hearth_serial_faults_total, logged at
//     most once per class every 10 s, and skipped; the stream resynchronises at the
//     next 0x00. Frames of another framing version get a Nack UNSUPPORTED_VERSION at
//     most once a second; unknown types a Nack UNKNOWN_TYPE; payloads that are not
//     protobuf a Nack BAD_PAYLOAD.
//
// # Bounds
//
// Memory per port is fixed: the frame splitter holds at most one encoded frame of
// MaxFrame bytes, two payload buffers circulate between the reading goroutine and the
// session, at most MaxPending batches wait for the sink, and a boot's bookkeeping
// above a hole is a bitmap of at most 4096 sequences. A device that floods is slowed,
// not buffered: at MaxPending batches in flight the port is not read, the UART's
// buffer fills, and the device's unacknowledged items wait on the device.
//
// # Concurrency
//
// Run must not be called concurrently with itself. It runs two goroutines per open
// port (one blocked in Read; the port is closed to stop it) and returns only after both
// have stopped.
//
// Package serialtest holds a simulated appliance firmware for tests and for
// cmd/appliance-sim.
package serial
