package broker

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

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

// New credentials are hashed with bcrypt at cost 10 (OWASP's minimum): about 4 KiB of
// memory per check, where argon2id at OWASP's parameters takes 19 MiB, more than the
// hub's whole memory budget for hearth (20 MB) when a few devices reconnect at once.
// Verify still accepts argon2id hashes in PHC form.
// (A variable only so that tests may use bcrypt's minimum cost.)
var bcryptCost = 10

// Hash returns a bcrypt hash of password.
func Hash(password []byte) (string, error) {
	if len(password) > 72 {
		return "", errors.New("password longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword(password, bcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// ErrBadHash is returned for a stored hash that is neither bcrypt nor argon2id PHC form.
var ErrBadHash = errors.New("not a bcrypt or argon2id hash")

// Verify reports whether password matches hash (bcrypt, or argon2id in PHC form),
// comparing in constant time.
func Verify(hash string, password []byte) (bool, error) {
	if strings.HasPrefix(hash, "$2") {
		err := bcrypt.CompareHashAndPassword([]byte(hash), password)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		}
		return false, ErrBadHash
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var v, m, t, p int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m <= 0 || m > 64<<10 || t <= 0 || t > 16 || p <= 0 || p > 16 {
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
//
// At most MaxConcurrentChecks password checks run at once (each costs tens of
// milliseconds of CPU by design); a login flood waits for its turn rather than
// taking the hub's CPU and memory.
type Credentials struct {
	mu     sync.RWMutex
	m      map[string]Credential
	checks chan struct{}
}

// MaxConcurrentChecks bounds the password checks in progress at once.
const MaxConcurrentChecks = 2

// NewCredentials returns a table holding cs.
func NewCredentials(cs ...Credential) *Credentials {
	c := &Credentials{m: map[string]Credential{}, checks: make(chan struct{}, MaxConcurrentChecks)}
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
	if err := kind.Check(); err != nil {
		return Credential{}, "", fmt.Errorf("device %q: %w", dev, err)
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
// long as a wrong password. It is made once, by the first broker (New) (a bcrypt hash
// at cost 10 is 57 ms here and about a quarter second on a Pi: made at package init,
// every `hearth version` and `hearth device list` paid it).
var dummyHash = sync.OnceValue(func() string {
	h, _ := Hash([]byte("hearth-dummy"))
	return h
})

// Authenticate implements Authenticator.
func (c *Credentials) Authenticate(username string, password []byte) (Identity, bool) {
	c.checks <- struct{}{}
	defer func() { <-c.checks }()
	c.mu.RLock()
	cr, ok := c.m[username]
	c.mu.RUnlock()
	if !ok {
		_, _ = Verify(dummyHash(), password)
		return Identity{}, false
	}
	match, err := Verify(cr.Hash, password)
	if err != nil || !match {
		return Identity{}, false
	}
	return Identity{Device: cr.Device, Kind: cr.Kind}, true
}

// List returns the stored credentials, sorted by device.
func (c *Credentials) List() []Credential {
	c.mu.RLock()
	out := make([]Credential, 0, len(c.m))
	for _, cr := range c.m {
		out = append(out, cr)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// Kind returns the registered kind of a device.
func (c *Credentials) Kind(dev string) (device.Kind, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cr, ok := c.m[dev]
	return cr.Kind, ok
}
