package privacy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/internal/fileperm"
)

// The pseudonym key file: one line, 64 hex digits (32 bytes), mode 0600, in data_dir
// (privacy.key_file). It is read at every start and never logged; a file that others
// may read, or that is not a key, is refused (as the admin token is).

// KeyBytes is the length of the pseudonym key.
const KeyBytes = 32

// ErrKeyFile marks a key file that exists but cannot be used; the error says why and
// how to fix it.
var ErrKeyFile = errors.New("unusable pseudonym key file")

// LoadOrCreateKey returns the key in path. When path does not exist it writes one
// (atomically, mode 0600): legacy when it is a key (the one an older hearth kept in
// its store, so that pseudonyms upstream do not change on upgrade), else a random
// one. created reports whether the file was made now.
func LoadOrCreateKey(path string, legacy []byte) (key []byte, created bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = legacy
		if len(key) != KeyBytes {
			key = make([]byte, KeyBytes)
			if _, err := rand.Read(key); err != nil {
				return nil, false, fmt.Errorf("%s: %w", path, err)
			}
		}
		if err := WriteKey(path, key); err != nil {
			return nil, false, err
		}
		return append([]byte(nil), key...), true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := checkKeyMode(path, fi); err != nil {
		return nil, false, err
	}
	key, err = ReadKey(path)
	return key, false, err
}

// CheckKey checks the key file at path as LoadOrCreateKey would (`hearth config
// check`): nil for a usable file, an error wrapping fs.ErrNotExist for a missing one.
func CheckKey(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := checkKeyMode(path, fi); err != nil {
		return err
	}
	_, err = ReadKey(path)
	return err
}

func checkKeyMode(path string, fi fs.FileInfo) error {
	if err := fileperm.OwnerOnly(path, fi); err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return nil
}

// ReadKey reads the key in path (content checks only).
func ReadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeyBytes {
		return nil, fmt.Errorf("%w: %s does not hold %d hex digits: restore it from a backup (a new key changes every pseudonym upstream)",
			ErrKeyFile, path, 2*KeyBytes)
	}
	return key, nil
}

// WriteKey writes key to path whole (a temporary file beside it, mode 0600, synced,
// renamed, the directory synced): after a crash the file is the old key or the new.
func WriteKey(path string, key []byte) error {
	if len(key) != KeyBytes {
		return fmt.Errorf("privacy: a key of %d bytes, want %d", len(key), KeyBytes)
	}
	if err := fileperm.WritePrivate(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// RotateKey replaces the key in path by a new random one (`hearth forget
// --household`): pseudonyms made after cannot be linked to those made before.
func RotateKey(path string) ([]byte, error) {
	key := make([]byte, KeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, WriteKey(path, key)
}

// Options are the settings of the household's rights (privacy: in
// configs/hearth.yaml, docs/privacy.md).
type Options struct {
	// KeyFile is the pseudonym key's file name in data_dir when privacy.key_file is
	// empty.
	KeyFile string
	// AuditKeep is how long the audit of what left the home is kept (at least a day).
	AuditKeep time.Duration
	// PayloadKeep is how long the exact payload of each delivered batch is kept
	// beside its audit entry (0: none; at most AuditKeep).
	PayloadKeep time.Duration
}

// DefaultOptions are the documented defaults (internal/config's privacy.* defaults
// are these).
func DefaultOptions() Options {
	return Options{KeyFile: "pseudonym.key", AuditKeep: 400 * 24 * time.Hour, PayloadKeep: 30 * 24 * time.Hour}
}
