// Package firmwareproto documents hearth's appliance firmware UART protocol: how a
// fridge main board or a washer controller talks to the hub over a serial line. It
// holds no code; its parts are:
//
//   - SPEC.md: the byte-level specification, written for firmware engineers who
//     implement it in C: framing (COBS, version, type, length, CRC-16), message set,
//     sequence numbers, acknowledgement and retransmission, versioning, worked examples.
//   - hearth_fw.proto: the messages (package hearth.fw.v1), with the generated Go code
//     committed in package fwpb (regenerate with `make proto`; `make proto-check` fails
//     if it is stale; see proto.mk).
//   - frame: the Go codec: AppendFrame and AppendMessage to encode; Decoder (pull) and
//     Parser (push) to decode a noisy byte stream, counting every dropped frame by
//     fault class.
//   - testdata/vectors: hex test vectors, valid and damaged, each with its expected
//     decoding, shared with firmware teams and used as fuzz seeds.
//
// # Dependencies
//
// This tree imports only the standard library and google.golang.org/protobuf. It sits
// at the bottom of hearth's import graph: device/serial imports it, never the reverse.
package firmwareproto
