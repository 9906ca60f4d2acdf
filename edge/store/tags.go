package store

import (
	"encoding/json"
	"fmt"

	"github.com/hearth-iot/hearth/edge/record"
)

// The tags and taglog buckets: each tag's state, written by edge/tagging, and the
// log of their changes, appended by edge/tagging and read by sync/summary, through
// these typed views (FORMAT.md, tags and taglog).

// Tag and TagChange are edge/record's.
type (
	Tag       = record.Tag
	TagChange = record.TagChange
)

// Tag returns the stored state of the tag name; nil without one; a *RecordError for
// one that does not decode.
func (t *Tx) Tag(name string) (*Tag, error) {
	var tg Tag
	ok, err := t.getJSON(Tags, []byte(name), &tg)
	if !ok || err != nil {
		return nil, err
	}
	return &tg, nil
}

// PutTag stores tg under its name.
func (t *Tx) PutTag(tg *Tag) error {
	if tg.Name == "" {
		return fmt.Errorf("store: a tag without a name")
	}
	return t.putJSON(Tags, []byte(tg.Name), tg)
}

// EachTag calls fn for every stored tag, by name, until fn returns an error. An
// unreadable record stops it with a *RecordError.
func (t *Tx) EachTag(fn func(*Tag) error) error {
	c := t.bucket(Tags).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var tg Tag
		if err := decodeRecord(v, &tg); err != nil {
			return &RecordError{Bucket: Tags, Key: append([]byte(nil), k...), Err: err}
		}
		if err := fn(&tg); err != nil {
			return err
		}
	}
	return nil
}

// AppendTagChange appends c to the tag log and returns its sequence.
func (t *Tx) AppendTagChange(c *TagChange) (uint64, error) {
	seq, err := t.rawNextSeq(string(TagLog))
	if err != nil {
		return 0, err
	}
	v, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("store: tag change of %s: %w", c.Tag, err)
	}
	return seq, t.put(TagLog, u64key(seq), v)
}

// TagChanges calls fn for every change after sequence after, in order, until fn
// returns an error. An unreadable record stops it with a *RecordError.
func (t *Tx) TagChanges(after uint64, fn func(seq uint64, c *TagChange) error) error {
	cur := t.bucket(TagLog).Cursor()
	for k, v := cur.Seek(u64key(after + 1)); k != nil; k, v = cur.Next() {
		var c TagChange
		if len(k) != 8 {
			return &RecordError{Bucket: TagLog, Key: append([]byte(nil), k...), Err: fmt.Errorf("key of %d bytes", len(k))}
		}
		if err := decodeRecord(v, &c); err != nil {
			return &RecordError{Bucket: TagLog, Key: append([]byte(nil), k...), Err: err}
		}
		if err := fn(seqOf(k), &c); err != nil {
			return err
		}
	}
	return nil
}
