// Command schema0gen writes a hearth store as the first hearth wrote it (schema 0):
// no schema key in meta, no taglog or credentials buckets, and every record spelled
// out byte for byte below, never encoded by today's code. It made
// ../schema0.db, which the tests read as an immutable input (its SHA-256 is pinned
// in migrate_test.go): run it only to make a new fixture of another name.
//
//	go run ./edge/store/testdata/schema0gen NEW-FILE
package main

import (
	"encoding/hex"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// layout is every bucket of a schema-0 store with its records (hex key → hex value).
var layout = map[string]map[string]string{
	"meta": {
		hex.EncodeToString([]byte("magic")):      hex.EncodeToString([]byte("hearth-store")),
		hex.EncodeToString([]byte("install_id")): hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		hex.EncodeToString([]byte("secret")):     "7373737373737373737373737373737373737373737373737373737373737373",
		hex.EncodeToString([]byte("created")):    hex.EncodeToString([]byte("2024-01-02T03:04:05Z")),
	},
	// Event records, version 1 (FORMAT.md): fridge1 door readings 1..3 of boot 4.
	"events": {
		"0000000000000001": "0107667269646765310666726964676504646f6f72000000000000f03f000000040180a8a69ccebfce972f80c8dda3b7c5ce972f",
		"0000000000000002": "0107667269646765310666726964676504646f6f720000000000000000000000040280d0fcd5d5bfce972f80f0b3ddbec5ce972f",
		"0000000000000003": "0107667269646765310666726964676504646f6f72000000000000f03f000000040380f8d28fddbfce972f80988a97c6c5ce972f",
	},
	// fridge1 NUL boot 4 → low 3, used 1.
	"dedupe":  {"66726964676531000000000000000004": "00000000000000030000000000000001"},
	"devices": {hex.EncodeToString([]byte("fridge1")): hex.EncodeToString([]byte(`{"id":"fridge1","kind":"fridge","readings":3}`))},
	"cursors": {hex.EncodeToString([]byte("rollup")): "0000000000000002"},
	"rollups": {}, "state": {}, "tags": {}, "outbox": {}, "audit": {},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: schema0gen NEW-FILE")
		os.Exit(2)
	}
	path := os.Args[1]
	if _, err := os.Lstat(path); err == nil {
		fmt.Fprintf(os.Stderr, "schema0gen: %s exists: fixtures are never rewritten\n", path)
		os.Exit(1)
	}
	db, err := bolt.Open(path, 0o644, nil) // bbolt's defaults, as the first hearth had them
	if err != nil {
		fmt.Fprintln(os.Stderr, "schema0gen:", err)
		os.Exit(1)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for name, recs := range layout {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for k, v := range recs {
				kb, err := hex.DecodeString(k)
				if err != nil {
					return err
				}
				vb, err := hex.DecodeString(v)
				if err != nil {
					return err
				}
				if err := b.Put(kb, vb); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "schema0gen:", err)
		os.Exit(1)
	}
}
