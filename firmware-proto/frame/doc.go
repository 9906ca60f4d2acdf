// Package frame is the Go codec for hearth's appliance firmware UART protocol: COBS
// framing delimited by 0x00, a version byte, a type byte, a 16-bit length, a protobuf
// payload (package fwpb) and a CRC-16/CCITT-FALSE. The byte-level specification, which
// firmware teams implement in C, is firmware-proto/SPEC.md; test vectors shared with
// them are in firmware-proto/testdata/vectors.
//
// # Encoding
//
// AppendFrame appends one frame, ready for the wire, to a buffer; AppendMessage marshals
// a fwpb message first and picks the frame type from the message (TypeOf). Neither
// allocates when the buffer has room.
//
// # Decoding
//
// A Decoder pulls frames from an io.Reader such as a serial port; a Parser is fed bytes
// by its caller. Both return only intact frames (matching CRC, known framing version)
// and treat everything else as noise: each dropped segment is counted in Stats under its
// fault class (ErrTooLong, ErrBadCOBS, ErrTruncated, ErrBadLength, ErrBadCRC,
// ErrBadVersion), reported to an optional OnFault callback, and skipped up to the next
// delimiter, where decoding resumes. A corrupt frame is never fatal; only the reader's
// own error ends Decoder.Next. Memory is bounded by the maximum frame size whatever the
// input, and intact frames are decoded without allocating.
//
// Frame.Unmarshal and Frame.Decode turn a payload into its fwpb message. Their errors
// (ErrUnknownType, ErrBadPayload) concern frames that arrived intact; the serial source
// answers them with a Nack, as SPEC.md prescribes.
//
// # Concurrency
//
// A Decoder or Parser belongs to one goroutine; only their Stats methods may be called
// from others. The encoding functions are safe for concurrent use.
package frame
