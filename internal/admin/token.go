package admin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hearth-iot/hearth/internal/fileperm"
)

// Token files: one line, the bearer token of the routes that change state.
const (
	// MinTokenLen is the shortest token accepted from a file, in characters.
	MinTokenLen = 32
	// maxTokenFile bounds what is read of a token file.
	maxTokenFile = 4 << 10
	// newTokenBytes random bytes make a new token (hex: twice as many characters).
	newTokenBytes = 32
)

// ErrTokenFile marks a token file that exists but cannot be used (empty, too short,
// open to group or others, not a regular file): the error says which and how to fix it.
var ErrTokenFile = errors.New("unusable admin token file")

// LoadOrCreateToken returns the admin token kept in path. When path does not exist
// it makes one — 32 bytes from crypto/rand, hex — and writes it with mode 0600
// atomically (a temporary file beside it, synced, then renamed), so a power cut
// leaves either no file or a whole one. An existing file must be a regular file
// that only its owner can read or write (mode & 0o077 == 0) holding a token of at
// least MinTokenLen printable characters, surrounding white space ignored; else
// the error (ErrTokenFile) names the file and says how to fix it. created reports
// whether the file was made now.
func LoadOrCreateToken(path string) (token string, created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		token, err := createToken(path)
		return token, err == nil, err
	case err != nil:
		return "", false, err
	}
	if err := checkTokenMode(path, fi); err != nil {
		return "", false, err
	}
	token, err = ReadToken(path)
	return token, false, err
}

// CheckToken checks the token file at path as LoadOrCreateToken would at a start,
// without making one: nil for a usable file, an error wrapping fs.ErrNotExist for a
// missing one (LoadOrCreateToken would make it), else the error LoadOrCreateToken
// returns (`hearth config check` reports it).
func CheckToken(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := checkTokenMode(path, fi); err != nil {
		return err
	}
	_, err = ReadToken(path)
	return err
}

func checkTokenMode(path string, fi fs.FileInfo) error {
	if err := fileperm.OwnerOnly(path, fi); err != nil {
		return fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	return nil
}

// ReadToken returns the token in path, as a client (`hearth device`) reads it: the
// same content checks as LoadOrCreateToken, none on its mode. A missing or
// unreadable file is an error that wraps fs.ErrNotExist or fs.ErrPermission.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return parseToken(path, b)
}

func parseToken(path string, b []byte) (string, error) {
	const fix = "delete it and hearth makes a new one when it starts"
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("%w: %s is larger than %d bytes: %s", ErrTokenFile, path, maxTokenFile, fix)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%w: %s is empty: %s", ErrTokenFile, path, fix)
	}
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("%w: %s holds %d characters, fewer than %d: %s", ErrTokenFile, path, len(tok), MinTokenLen, fix)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("%w: %s: character %d is not printable ASCII (a token is one word sent in an HTTP header): %s",
				ErrTokenFile, path, i+1, fix)
		}
	}
	return tok, nil
}

// createToken writes a new token to path, atomically, mode 0600.
func createToken(path string) (string, error) {
	var b [newTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	tok := hex.EncodeToString(b[:])
	// A token lost to a power cut before the directory is synced is only made again
	// at the next start.
	if err := fileperm.WritePrivate(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("cannot create %s: %w", path, err)
	}
	return tok, nil
}
