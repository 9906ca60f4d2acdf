package broker

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"

	"github.com/hearth-iot/hearth/device"
)

// Identity is who an authenticated client is: one device.
type Identity struct {
	Device string
	Kind   device.Kind
}

// Authenticator checks a client's credentials. The broker denies every client it
// does not accept: there is no anonymous access and no shared default password.
type Authenticator interface {
	Authenticate(username string, password []byte) (Identity, bool)
}

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane), affordable on a
// 512 MB hub for the rare event of a device connecting.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// Hash returns an argon2id hash of password in PHC string form.
func Hash(password []byte) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(password, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// ErrBadHash is returned for a stored hash that is not argon2id PHC form.
var ErrBadHash = errors.New("not an argon2id hash")

// Verify reports whether password matches hash, comparing in constant time.
func Verify(hash string, password []byte) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var v, m, t, p int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m <= 0 || m > 1<<20 || t <= 0 || t > 16 || p <= 0 || p > 16 {
		return false, ErrBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, ErrBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrBadHash
	}
	got := argon2.IDKey(password, salt, uint32(t), uint32(m), uint8(p), uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NewPassword returns a random password of 24 base64url characters (144 bits).
func NewPassword() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Credential is one device's stored credential: never the password, only its hash.
type Credential struct {
	Device string      `json:"device"`
	Kind   device.Kind `json:"kind"`
	Hash   string      `json:"hash"`
}

// Credentials is an in-memory credential table, safe for concurrent use. Persistent
// credentials are loaded into it; simulated devices add ephemeral ones.
type Credentials struct {
	mu sync.RWMutex
	m  map[string]Credential
}

// NewCredentials returns a table holding cs.
func NewCredentials(cs ...Credential) *Credentials {
	c := &Credentials{m: map[string]Credential{}}
	for _, x := range cs {
		c.m[x.Device] = x
	}
	return c
}

// Add makes a credential for a device and returns it with its password (shown once).
func (c *Credentials) Add(dev string, kind device.Kind) (Credential, string, error) {
	if err := device.ValidID(dev); err != nil {
		return Credential{}, "", fmt.Errorf("device %q: %w", dev, err)
	}
	if !kind.Valid() {
		return Credential{}, "", fmt.Errorf("device %q: unknown kind %q", dev, kind)
	}
	pw := NewPassword()
	h, err := Hash([]byte(pw))
	if err != nil {
		return Credential{}, "", err
	}
	cr := Credential{Device: dev, Kind: kind, Hash: h}
	c.Set(cr)
	return cr, pw, nil
}

// Set stores cr, replacing any credential of the same device.
func (c *Credentials) Set(cr Credential) {
	c.mu.Lock()
	c.m[cr.Device] = cr
	c.mu.Unlock()
}

// Remove deletes a device's credential.
func (c *Credentials) Remove(dev string) {
	c.mu.Lock()
	delete(c.m, dev)
	c.mu.Unlock()
}

// dummyHash is verified against for unknown users, so that a wrong user name takes as
// long as a wrong password.
var dummyHash, _ = Hash([]byte("hearth-dummy"))

// Authenticate implements Authenticator.
func (c *Credentials) Authenticate(username string, password []byte) (Identity, bool) {
	c.mu.RLock()
	cr, ok := c.m[username]
	c.mu.RUnlock()
	if !ok {
		_, _ = Verify(dummyHash, password)
		return Identity{}, false
	}
	match, err := Verify(cr.Hash, password)
	if err != nil || !match {
		return Identity{}, false
	}
	return Identity{Device: cr.Device, Kind: cr.Kind}, true
}

// Kind returns the registered kind of a device.
func (c *Credentials) Kind(dev string) (device.Kind, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cr, ok := c.m[dev]
	return cr.Kind, ok
}
