package frame

import (
	"errors"
	"fmt"
)

// Fault classes. A Decoder or Parser reports every frame it drops as a *FaultError whose
// Err is one of these, and counts it in Stats. errors.Is(err, ErrBadCRC) and the like
// tell them apart. They are listed in the order the checks run (see SPEC.md, "Decoding").
var (
	// ErrTooLong: more than MaxEncodedLen(maxFrame) bytes arrived before a delimiter, or
	// the frame decoded to more than maxFrame bytes. The rest of the segment, up to the
	// next delimiter, is skipped without being buffered.
	ErrTooLong = errors.New("frame too long")

	// ErrBadCOBS: a COBS code byte points past the end of the segment. Usually bytes
	// were lost (a UART overrun) or a code byte was corrupted.
	ErrBadCOBS = errors.New("bad COBS encoding")

	// ErrTruncated: the frame decoded to fewer bytes than a header and a CRC, or to
	// fewer than its length field declares; or the stream ended in the middle of a frame.
	ErrTruncated = errors.New("frame truncated")

	// ErrBadLength: the frame decoded to more bytes than its length field declares.
	ErrBadLength = errors.New("frame longer than its length field")

	// ErrBadCRC: the CRC-16 at the end of the frame does not match its contents.
	ErrBadCRC = errors.New("frame CRC mismatch")

	// ErrBadVersion: the frame is intact (its CRC matches) but its framing version is
	// not Version. A device speaking a newer protocol shows up as a steady count here.
	ErrBadVersion = errors.New("unsupported framing version")
)

// Errors from the message helpers (NewMessage, TypeOf, AppendMessage, Frame.Unmarshal,
// Frame.Decode). They concern the payload of a frame that was received intact, so a
// Decoder never counts them: the caller answers them with a Nack.
var (
	// ErrUnknownType: the frame type is not one this version knows (Nack UNKNOWN_TYPE).
	ErrUnknownType = errors.New("unknown message type")

	// ErrWrongType: the message passed to Frame.Unmarshal is not the frame type's message.
	ErrWrongType = errors.New("message does not match frame type")

	// ErrBadPayload: the payload is not a valid protobuf encoding of its type's message
	// (Nack BAD_PAYLOAD).
	ErrBadPayload = errors.New("bad protobuf payload")
)

// FaultError describes one dropped frame. Err is the fault class (one of ErrTooLong,
// ErrBadCOBS, ErrTruncated, ErrBadLength, ErrBadCRC, ErrBadVersion).
type FaultError struct {
	Err error // fault class

	// Offset is the position in the stream of the segment's first byte (the byte after
	// the previous delimiter), counting from 0 at the first byte the decoder saw.
	Offset int64
	// Len is the number of encoded bytes in the segment, delimiter excluded. A segment
	// longer than the decoder's limit is not measured further: its Len is the limit + 1.
	Len int

	// Version and Type are bytes 0 and 1 of the decoded frame, when COBS decoding got
	// that far (zero otherwise). They are trustworthy only for ErrBadVersion, whose CRC
	// matched; for the other classes they may be corrupt.
	Version uint8
	Type    MsgType
}

func (e *FaultError) Error() string {
	if e.Err == ErrBadVersion {
		return fmt.Sprintf("frame at offset %d (%d bytes): %v %d (type %v)", e.Offset, e.Len, e.Err, e.Version, e.Type)
	}
	return fmt.Sprintf("frame at offset %d (%d bytes): %v", e.Offset, e.Len, e.Err)
}

// Unwrap returns the fault class.
func (e *FaultError) Unwrap() error { return e.Err }
