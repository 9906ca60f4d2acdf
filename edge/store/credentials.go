package store

import (
	"bytes"
	"fmt"

	"github.com/hearth-iot/hearth/device"
)

// The credentials bucket: the device registry (FORMAT.md, credentials). Three kinds
// of record, by key prefix, each a type of its own here — not a Go struct of another
// package serialised as it happens to be:
//
//	device/<id>              Credential: a device's MQTT credential (a hash, never a password)
//	accepted/<name>          Entity: a Home Assistant entity the household accepted
//	proposal/<config topic>  Entity: one discovery proposed, kept so that it is proposed
//	                         again after a restart when its config is not retained
//
// The keep file (keep.go) holds a copy of the bucket, rewritten after every commit
// that changes it.

const (
	credentialPrefix = "device/"
	acceptedPrefix   = "accepted/"
	proposalPrefix   = "proposal/"
)

// Credential is a device's MQTT credential.
type Credential struct {
	Device string      `json:"device"`
	Kind   device.Kind `json:"kind"`
	Hash   string      `json:"hash"` // bcrypt of the password
}

// Entity is a Home Assistant discovery entity, proposed or accepted. Its JSON names
// are those hearth has written since the first release (Go's field names).
type Entity struct {
	Mapping  EntityMapping `json:"Mapping"`
	Property string        `json:"Property"`
	Signal   device.Signal `json:"Signal"`
	Reason   string        `json:"Reason"`
	Problem  string        `json:"Problem"`

	ConfigTopic string `json:"ConfigTopic"`
	Component   string `json:"Component"`
	NodeID      string `json:"NodeID"`
	ObjectID    string `json:"ObjectID"`
	UniqueID    string `json:"UniqueID"`
	EntityName  string `json:"EntityName"`
	DeviceClass string `json:"DeviceClass"`
	Unit        string `json:"Unit"`

	StateTopic    string `json:"StateTopic"`
	ValueTemplate string `json:"ValueTemplate"`
	PayloadOn     string `json:"PayloadOn"`
	PayloadOff    string `json:"PayloadOff"`

	AvailabilityTopic   string `json:"AvailabilityTopic"`
	PayloadAvailable    string `json:"PayloadAvailable"`
	PayloadNotAvailable string `json:"PayloadNotAvailable"`

	DeviceName   string   `json:"DeviceName"`
	Model        string   `json:"Model"`
	Manufacturer string   `json:"Manufacturer"`
	Identifiers  []string `json:"Identifiers"`
}

// EntityMapping is what an entity maps to: a hearth device, its kind, and which
// signal each property is.
type EntityMapping struct {
	Source  string                   `json:"Source"`
	Name    string                   `json:"Name"`
	Device  string                   `json:"Device"`
	Kind    device.Kind              `json:"Kind"`
	Signals map[string]device.Signal `json:"Signals"`
}

// Credential returns the credential of dev; nil without one.
func (t *Tx) Credential(dev string) (*Credential, error) {
	var c Credential
	ok, err := t.getJSON(Credentials, []byte(credentialPrefix+dev), &c)
	if !ok || err != nil {
		return nil, err
	}
	return &c, nil
}

// PutCredential stores c.
func (t *Tx) PutCredential(c *Credential) error {
	if err := device.ValidID(c.Device); err != nil {
		return fmt.Errorf("store: credential: %w", err)
	}
	return t.putJSON(Credentials, []byte(credentialPrefix+c.Device), c)
}

// DeleteCredential removes the credential of dev; false when there was none.
func (t *Tx) DeleteCredential(dev string) (bool, error) {
	return t.deleteIf([]byte(credentialPrefix + dev))
}

// EachCredential calls fn for every credential, by device, until fn returns an error.
func (t *Tx) EachCredential(fn func(*Credential) error) error {
	return eachJSON(t, credentialPrefix, fn)
}

// AcceptedEntity returns the accepted entity name; nil without one.
func (t *Tx) AcceptedEntity(name string) (*Entity, error) {
	var e Entity
	ok, err := t.getJSON(Credentials, []byte(acceptedPrefix+name), &e)
	if !ok || err != nil {
		return nil, err
	}
	return &e, nil
}

// PutAcceptedEntity stores e as accepted, under its mapping's name.
func (t *Tx) PutAcceptedEntity(e *Entity) error {
	if e.Mapping.Name == "" {
		return fmt.Errorf("store: an accepted entity without a name")
	}
	return t.putJSON(Credentials, []byte(acceptedPrefix+e.Mapping.Name), e)
}

// DeleteAcceptedEntity removes the accepted entity name; false when there was none.
func (t *Tx) DeleteAcceptedEntity(name string) (bool, error) {
	return t.deleteIf([]byte(acceptedPrefix + name))
}

// EachAcceptedEntity calls fn for every accepted entity, by name.
func (t *Tx) EachAcceptedEntity(fn func(*Entity) error) error { return eachJSON(t, acceptedPrefix, fn) }

// PutProposal keeps what discovery learned from configTopic; nil removes it.
func (t *Tx) PutProposal(configTopic string, e *Entity) error {
	if e == nil {
		_, err := t.deleteIf([]byte(proposalPrefix + configTopic))
		return err
	}
	return t.putJSON(Credentials, []byte(proposalPrefix+configTopic), e)
}

// EachProposal calls fn for every kept proposal, by config topic.
func (t *Tx) EachProposal(fn func(*Entity) error) error { return eachJSON(t, proposalPrefix, fn) }

func (t *Tx) deleteIf(key []byte) (bool, error) {
	if t.bucket(Credentials).Get(key) == nil {
		return false, nil
	}
	return true, t.del(Credentials, key)
}

// eachJSON decodes every credentials record under prefix into a new T; an unreadable
// one stops it with a *RecordError.
func eachJSON[T any](t *Tx, prefix string, fn func(*T) error) error {
	p := []byte(prefix)
	c := t.bucket(Credentials).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		x := new(T)
		if err := decodeRecord(v, x); err != nil {
			return &RecordError{Bucket: Credentials, Key: append([]byte(nil), k...), Err: err}
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}
