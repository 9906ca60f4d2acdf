package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
)

// fileCheck is what checkFile found that does not stop Open.
type fileCheck struct {
	// otherMeta: one meta page is damaged (boltFile.otherMeta); bbolt opens the
	// transaction of the other. "" when both are sound.
	otherMeta string
	txid      uint64 // the transaction bbolt will open
	metaPage  int    // the meta page it is on
	pages     uint64 // pages below the high-water mark
}

// checkFile reads the file the way bbolt will read it (pagefile.go) before bbolt
// does, so that damage is an error here rather than a panic or a fault in bbolt.
// records: also check every record of every bucket against bucketDefs (off with
// Options.SkipCheck; the page structure is always checked, since bbolt's Open
// walks all of it). It returns ErrNotHearth or ErrSchemaTooNew for a file that is
// not this hearth's to judge (left untouched), and corruptErr for damage.
func checkFile(f *os.File, records bool) (fileCheck, error) {
	var fc fileCheck
	fi, err := f.Stat()
	if err != nil {
		return fc, fmt.Errorf("store: %s: %w", f.Name(), err)
	}
	corrupt := func(err error) error { return corruptErr{fmt.Errorf("store: %s: %w", f.Name(), err)} }
	bf, err := readBoltFile(f, fi.Size(), true)
	if err != nil {
		return fc, corrupt(err)
	}
	if bf == nil {
		return fc, nil // empty: bbolt makes a new file
	}
	fc.otherMeta, fc.txid, fc.metaPage, fc.pages = bf.otherMeta, bf.meta.txid, bf.metaPage, bf.meta.hwm
	w := &walker{bf: bf, strict: true}
	top, err := w.topLevel()
	if err != nil {
		return fc, corrupt(err)
	}
	metaV, ok := top["meta"]
	if !ok {
		if len(top) > 0 {
			return fc, fmt.Errorf("store: %s: %w (file left untouched)", f.Name(), ErrNotHearth)
		}
		return fc, nil // no bucket yet: init makes them
	}
	// The meta bucket first: its magic and schema say whether the file is ours.
	meta := map[string][]byte{}
	if err := w.forEach("meta", metaV, func(e element) error {
		if e.bucket {
			return fmt.Errorf("bucket meta: nested bucket %q", e.key)
		}
		meta[string(e.key)] = bytes.Clone(e.value)
		return nil
	}); err != nil {
		return fc, corrupt(err)
	}
	if string(meta["magic"]) != magic {
		return fc, fmt.Errorf("store: %s: %w (file left untouched)", f.Name(), ErrNotHearth)
	}
	schema := uint64(0) // absent: schema 0
	if v := meta["schema"]; len(v) == 8 {
		schema = binary.BigEndian.Uint64(v)
	}
	if schema > SchemaVersion {
		return fc, schemaTooNew(schema)
	}
	if records {
		for k, v := range meta {
			if err := checkMetaRecord([]byte(k), v); err != nil {
				return fc, corrupt(fmt.Errorf("bucket meta: %w", err))
			}
		}
	}
	names := make([]string, 0, len(top))
	for name := range top {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "meta" {
			continue
		}
		def, known := bucketDefOf(name)
		if !known {
			return fc, corrupt(fmt.Errorf("unknown bucket %q", name))
		}
		check := def.checkOf(schema) // an older file is checked as it was written; init migrates it
		if err := w.forEach(name, top[name], func(e element) error {
			if e.bucket {
				return fmt.Errorf("bucket %s: nested bucket %q", name, e.key)
			}
			if records && check != nil {
				if err := check(e.key, e.value); err != nil {
					return fmt.Errorf("bucket %s: key %x: %w", name, e.key, err)
				}
			}
			return nil
		}); err != nil {
			return fc, corrupt(err)
		}
	}
	if err := bf.checkFreelist(); err != nil {
		return fc, corrupt(err)
	}
	return fc, nil
}

// topLevel returns the entries of the root bucket, each a bucket (its value the
// bucket header). A key that is not a bucket is damage.
func (w *walker) topLevel() (map[string][]byte, error) {
	top := map[string][]byte{}
	err := w.tree("(root)", w.bf.meta.root, nil, nil, 0, func(e element) error {
		if !e.bucket {
			if w.strict {
				return fmt.Errorf("root: key %q is not a bucket", e.key)
			}
			w.damage(damageNote{bucket: "(root)", page: e.page, what: fmt.Sprintf("key %q is not a bucket", e.key), lost: 1})
			return nil
		}
		top[string(e.key)] = bytes.Clone(e.value)
		return nil
	})
	return top, err
}

// schemaTooNew is the error for a file written by a newer hearth.
func schemaTooNew(schema uint64) error {
	return fmt.Errorf("store: schema %d: %w (this hearth reads up to %d)", schema, ErrSchemaTooNew, SchemaVersion)
}
