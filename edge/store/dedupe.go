package store

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Dedupe.
//
// A device numbers its readings 1, 2, 3… within each boot (Reading.Boot). For each
// (device, boot) the store keeps the highest sequence below which it has every reading
// (low) and the sequences above it that it has too (above, sorted): a retransmission
// is recognised however readings were reordered or refused in between. A gap is never
// given up on — a reading that fills it late is always stored, whatever came after —
// because a reading counted as a duplicate is acknowledged, and one acknowledged but
// not stored would be lost. What is bounded instead is the memory of what is present:
// past maxAbove sequences above a gap, the lowest of them is forgotten, so a
// retransmission that old is stored a second time (a duplicate is recoverable; a
// loss is not). A device keeps the state of its maxBoots most recent boots.
const (
	maxAbove = 4096
	maxBoots = 8
)

type bootKey struct {
	dev  string
	boot uint64
}

type watermark struct {
	low   uint64
	above []uint64
	used  uint64 // commit counter of the last use, for pruning old boots
}

func (w *watermark) seen(seq uint64) bool {
	if seq <= w.low {
		return true
	}
	_, ok := slices.BinarySearch(w.above, seq)
	return ok
}

func (w *watermark) add(seq uint64) {
	if seq == w.low+1 {
		w.low++
	} else {
		i, _ := slices.BinarySearch(w.above, seq)
		w.above = slices.Insert(w.above, i, seq)
		if len(w.above) > maxAbove { // forget the oldest present sequence, never a gap
			w.above = w.above[1:]
		}
	}
	for len(w.above) > 0 && w.above[0] == w.low+1 {
		w.low++
		w.above = w.above[1:]
	}
}

func (w *watermark) clone() *watermark {
	return &watermark{low: w.low, above: slices.Clone(w.above), used: w.used}
}

// dedupeKey is device id, NUL, boot (8 bytes big-endian).
func dedupeKey(k bootKey) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(k.dev), 0), k.boot)
}

func parseDedupeKey(b []byte) (bootKey, bool) {
	if len(b) < 9 || b[len(b)-9] != 0 {
		return bootKey{}, false
	}
	return bootKey{dev: string(b[:len(b)-9]), boot: binary.BigEndian.Uint64(b[len(b)-8:])}, true
}

// encode: low, used, then each sequence above low, 8 bytes big-endian each, sealed
// with the record's key (seal.go).
func (w *watermark) encode(key []byte) []byte {
	b := make([]byte, 0, 16+8*len(w.above)+4)
	b = binary.BigEndian.AppendUint64(b, w.low)
	b = binary.BigEndian.AppendUint64(b, w.used)
	for _, s := range w.above {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return seal(key, b)
}

// decodeWatermark decodes the sealed record of key.
func decodeWatermark(key, sealed []byte) (*watermark, error) {
	b, err := unseal(key, sealed)
	if err != nil {
		return nil, fmt.Errorf("dedupe record: %w", err)
	}
	return decodeWatermarkV2(b)
}

// decodeWatermarkV2 decodes a record as schema 2 and before wrote it: unsealed.
func decodeWatermarkV2(b []byte) (*watermark, error) {
	if len(b) < 16 || len(b)%8 != 0 {
		return nil, fmt.Errorf("dedupe record of %d bytes", len(b))
	}
	w := &watermark{low: binary.BigEndian.Uint64(b), used: binary.BigEndian.Uint64(b[8:])}
	for i := 16; i < len(b); i += 8 {
		w.above = append(w.above, binary.BigEndian.Uint64(b[i:]))
	}
	return w, nil
}

// pruneBoots deletes the dedupe state of all but the maxBoots most recently used
// boots of each device this commit touched. It returns what it deleted.
func (s *Store) pruneBoots(dd interface{ Delete([]byte) error }, changed map[bootKey]*watermark) ([]bootKey, error) {
	devs := map[string]bool{}
	for bk := range changed {
		devs[bk.dev] = true
	}
	var pruned []bootKey
	for dev := range devs {
		var boots []bootKey
		for boot := range s.bootsOf[dev] { // this device's boots only, not every device's
			boots = append(boots, bootKey{dev, boot})
		}
		for bk := range changed {
			if bk.dev == dev {
				if _, ok := s.wm[bk]; !ok {
					boots = append(boots, bk)
				}
			}
		}
		if len(boots) <= maxBoots {
			continue
		}
		used := func(bk bootKey) uint64 {
			if w, ok := changed[bk]; ok {
				return w.used
			}
			return s.wm[bk].used
		}
		slices.SortFunc(boots, func(a, b bootKey) int { return int(used(b)) - int(used(a)) })
		for _, bk := range boots[maxBoots:] {
			if err := dd.Delete(dedupeKey(bk)); err != nil {
				return nil, err
			}
			delete(changed, bk)
			pruned = append(pruned, bk)
		}
	}
	return pruned, nil
}
