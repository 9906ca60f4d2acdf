package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
)

// Latest calls fn for the stored readings of device dev ("" for every device),
// newest first, until fn returns false, the oldest kept event is passed, or maxScan
// events (of any device) have been examined (maxScan <= 0: no bound). It returns how
// many events it examined and whether it went back to the oldest event (complete:
// nothing older of dev is stored). The reading passed to fn is valid only during the
// call.
//
// # Cost
//
// The event log is keyed by the store's sequence, not by device, and there is no
// index by device: Latest walks the log backwards from the newest event in one read
// transaction. Each event examined costs a B+tree cursor step and a comparison of its
// encoded device id (the record is not decoded unless it is dev's): 13 ns per event on
// the dev machine with the file in the page cache (BenchmarkLatest), so 1,000,000
// events take about 13 ms there and several times that on a Raspberry Pi; from an
// SD card, the page reads dominate: a reading is ~70 bytes, so 1,000,000 events read
// about 70 MB of the file. The
// bound keeps a question about a quiet device among busy ones from reading the whole
// log; an answer that hit the bound says so (complete is false). Readings are not
// held up: the writer logs and acknowledges them meanwhile (only the database's
// batch waits).
func (s *Store) Latest(dev string, maxScan int, fn func(seq uint64, r *device.Reading) bool) (examined int, complete bool, err error) {
	want := []byte(dev)
	intern := map[string]string{}
	err = s.read(func(tx *bolt.Tx) error {
		var r device.Reading
		c := tx.Bucket(bucketEvents).Cursor()
		scan := func() error {
			for k, v := c.Last(); k != nil; k, v = c.Prev() {
				if maxScan > 0 && examined >= maxScan {
					return nil
				}
				examined++
				seq := binary.BigEndian.Uint64(k)
				if dev != "" {
					id, ok := eventDevice(v)
					if !ok {
						return fmt.Errorf("store: event %d: %w", seq, ErrCorruptEvent)
					}
					if !bytes.Equal(id, want) {
						continue
					}
				}
				if err := decodeReading(v, &r, intern); err != nil {
					return fmt.Errorf("store: event %d: %w", seq, err)
				}
				if !fn(seq, &r) {
					return nil
				}
			}
			complete = true
			return nil
		}
		err := scan()
		if examined >= releaseAfterEvents {
			// A long walk made its pages resident: give them back now (see ReadEvents).
			if rerr := s.releaseIn(tx); rerr != nil {
				s.log.Warn("releasing mapped pages failed", "err", rerr)
			}
		}
		return err
	})
	return examined, complete, err
}

// eventDevice returns the device id of an encoded event without decoding the rest
// (FORMAT.md, "events": version byte, then the device as uvarint length and bytes).
func eventDevice(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != eventVersion {
		return nil, false
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n > uint64(len(v)-1-w) {
		return nil, false
	}
	return v[1+w : 1+w+int(n)], true
}
