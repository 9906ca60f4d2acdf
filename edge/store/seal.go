package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Sealed records (schema 3).
//
// bbolt keeps no checksum of its pages, so the check at Open can only refuse what
// is the wrong shape. Most records have a shape damage breaks (an event record must
// parse to its last byte, a JSON value must be JSON), but a dedupe watermark or a
// cursor is any run of 8-byte numbers: a damaged one reads as another, and the
// store would go on trusting it (refuse readings as duplicates, skip events). So
// those records end with a CRC-32C (Castagnoli) of their key and the bytes before
// it, big-endian: damage anywhere in key or value fails the check.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal appends the CRC-32C of key ‖ value to value.
func seal(key, value []byte) []byte {
	c := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, value)
	return binary.BigEndian.AppendUint32(value, c)
}

// errSeal means a sealed record's CRC does not match its key and value.
var errSeal = errors.New("checksum mismatch")

// unseal checks the CRC at the end of a sealed value and returns what it covers.
func unseal(key, sealed []byte) ([]byte, error) {
	if len(sealed) < 4 {
		return nil, errSeal
	}
	v := sealed[:len(sealed)-4]
	c := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, v)
	if binary.BigEndian.Uint32(sealed[len(v):]) != c {
		return nil, errSeal
	}
	return v, nil
}

// cursorValue is the sealed value of cursor name at seq: u64be seq ‖ CRC.
func cursorValue(name string, seq uint64) []byte {
	return seal([]byte(name), binary.BigEndian.AppendUint64(make([]byte, 0, 12), seq))
}

// parseCursor decodes a sealed cursor value.
func parseCursor(name, v []byte) (uint64, error) {
	b, err := unseal(name, v)
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, errors.New("cursor value is not 8 bytes")
	}
	return binary.BigEndian.Uint64(b), nil
}
