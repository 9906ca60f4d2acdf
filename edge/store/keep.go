package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// The keep file: what a damaged database must not take with it.
//
// The devices' credentials (password hashes, and the accepted discovery proposals)
// and the install's identity (install id and creation time; never the pseudonym
// key, which lives in a file of its own: sync/privacy)
// are small, change rarely, and hurt most to lose: without them every MQTT device
// is refused until someone registers it again by hand, and every pseudonym
// upstream changes. A single damaged page of the database can hold all of them.
// So the store keeps a copy in a file of its own beside the database
// (<file>.keep), written whole — a temporary file, fsync, rename, fsync of the
// directory — after every commit that changes credentials and at every Open when
// it differs, and sealed with a SHA-256 of its content.
//
// The database stays the source of truth: the credentials change in the same
// transaction as their audit record (`hearth device`, the broker), and the broker
// reads them through the store; a second store of record would have to agree with
// the first after every crash. The copy is only read by salvage, for what it could
// not recover from the damaged file: the identity when the meta bucket was lost,
// the credentials when any of them was. It lags the database only if the process
// dies between a commit and the copy's rename, and the next Open rewrites it.

// keepSuffix names the keep file after the database file.
const keepSuffix = ".keep"

// keepFormat is the version of the keep file's layout.
const keepFormat = 1

// keepContent is what the keep file holds.
type keepContent struct {
	Format    int    `json:"format"`
	InstallID string `json:"install_id"`
	// Secret: the pseudonym key, as keep files written before it moved to its own
	// file (sync/privacy) held it; read, never written: the keep file must not carry
	// a copy of a key kept out of the store.
	Secret      []byte                     `json:"secret,omitempty"`
	Created     string                     `json:"created"`
	Credentials map[string]json.RawMessage `json:"credentials"` // the credentials bucket: key → value
}

// keepFile is the keep file on disk: its content and the SHA-256 of the content's
// JSON.
type keepFile struct {
	SHA256 string          `json:"sha256"`
	Keep   json.RawMessage `json:"keep"`
}

// readKeep reads the keep file at path; a file that is missing, unreadable or
// fails its checksum is nil with the reason.
func readKeep(path string) (*keepContent, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f keepFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	if sum := sha256.Sum256(f.Keep); hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, fmt.Errorf("store: %s: checksum mismatch", path)
	}
	var k keepContent
	if err := json.Unmarshal(f.Keep, &k); err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	if k.Format != keepFormat {
		return nil, fmt.Errorf("store: %s: format %d, this hearth reads %d", path, k.Format, keepFormat)
	}
	return &k, nil
}

// keepOf reads what the keep file of db should hold.
func keepOf(tx *bolt.Tx) *keepContent {
	meta := tx.Bucket(bucketMeta)
	k := &keepContent{Format: keepFormat, InstallID: string(meta.Get(keyInstallID)), Created: string(meta.Get(keyCreated)),
		Credentials: map[string]json.RawMessage{}}
	if b := tx.Bucket([]byte(Credentials)); b != nil {
		_ = b.ForEach(func(key, v []byte) error {
			k.Credentials[string(key)] = bytes.Clone(v)
			return nil
		})
	}
	return k
}

func (k *keepContent) equal(o *keepContent) bool {
	return o != nil && k.InstallID == o.InstallID && bytes.Equal(k.Secret, o.Secret) && k.Created == o.Created &&
		maps.EqualFunc(k.Credentials, o.Credentials, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })
}

// writeKeep writes the keep file at path whole: it is either the old one or the
// new one after a crash.
func writeKeep(path string, k *keepContent) error {
	content, err := json.Marshal(k)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	b, err := json.Marshal(keepFile{SHA256: hex.EncodeToString(sum[:]), Keep: content})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: write %s: %w", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncKeepLocked brings the keep file up to date with the database as committed,
// if it is not. s.bmu is held (or the store is not running yet): no commit changes
// the file meanwhile.
func (s *Store) syncKeepLocked() error {
	s.keepMu.Lock()
	defer s.keepMu.Unlock()
	var want *keepContent
	if err := s.db.View(func(tx *bolt.Tx) error { want = keepOf(tx); return nil }); err != nil {
		return err
	}
	path := s.path + keepSuffix
	if have, err := readKeep(path); err == nil && want.equal(have) {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("the keep file was unreadable: writing it again", "path", path, "err", err)
	}
	return writeKeep(path, want)
}
