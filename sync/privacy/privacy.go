// Package privacy decides what may leave the home and how it is named there.
//
// # Pseudonyms
//
// Identifiers upstream are pseudonyms: a keyed HMAC-SHA256 of the local id with the
// per-install key, which never leaves the hub. The same device always has the same
// pseudonym from one install, and no one without the key can link it to the
// device's local id, another install's pseudonym, or the household. The key lives in
// a file of its own in data_dir, mode 0600 (key.go): a copy of the store alone does
// not carry it, and `hearth forget --household` replaces it, so that what is sent
// after cannot be linked to what was sent before.
//
// # Consent
//
// A message leaves only in a category the household consented to (consent.go):
// usage, tags, sensitive, and cross_border for a transport whose endpoint is outside
// the household's region. An erasure request needs none.
package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// Pseudonymizer names things upstream.
type Pseudonymizer struct {
	key []byte
}

// NewPseudonymizer returns a Pseudonymizer keyed with the install's secret.
func NewPseudonymizer(secret []byte) *Pseudonymizer {
	return &Pseudonymizer{key: append([]byte(nil), secret...)}
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ID returns the pseudonym of a local identifier in a namespace ("device",
// "household"): 26 lower-case base32 characters (130 bits of the HMAC).
func (p *Pseudonymizer) ID(namespace, local string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(namespace))
	m.Write([]byte{0})
	m.Write([]byte(local))
	return strings.ToLower(b32.EncodeToString(m.Sum(nil))[:26])
}

// SimPrefix starts the id of every device of the agent's simulated household. It is
// only a naming convention: whether a device is simulated is decided by the agent from
// the household it built (summary.Options.Simulated), never from an id's prefix.
const SimPrefix = "sim-"
