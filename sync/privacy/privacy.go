// Package privacy decides what may leave the home and how it is named there.
//
// Identifiers upstream are pseudonyms: a keyed HMAC-SHA256 of the local id with the
// per-install secret, which never leaves the hub. The same device always has the same
// pseudonym from one install, and no one without the secret can link it to the
// device's local id, another install's pseudonym, or the household.
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

// Consent categories (edge/tagging uses the same names).
const (
	Usage     = "usage"
	Sensitive = "sensitive"
)

// Consent is what the household agreed may leave the home.
type Consent struct {
	Usage     bool
	Sensitive bool
}

// Allows reports whether data of category may leave.
func (c Consent) Allows(category string) bool {
	switch category {
	case Usage:
		return c.Usage
	case Sensitive:
		return c.Sensitive
	}
	return false
}

// SimPrefix starts the id of every device of the agent's simulated household. It is
// only a naming convention: whether a device is simulated is decided by the agent from
// the household it built (summary.Options.Simulated), never from an id's prefix.
const SimPrefix = "sim-"
