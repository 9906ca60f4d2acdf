// Package registry is the household's device registry: the MQTT credentials of the
// devices that connect to the embedded broker (a bcrypt hash each, never a password)
// and the Home Assistant discovery entities the household accepted or discovery
// proposed. It keeps them in the store's credentials bucket through its typed views
// (edge/store/credentials.go), audits every change, and decides the rules they
// follow: one id per device, one kind per device (the kind it already has wins over
// a guess, and a contradicting one is refused with where the kind comes from).
//
// The agent (cmd/hearth) serves it over the admin API and makes the running broker
// and the external source follow each change; `hearth device` is its command line.
package registry

import (
	"errors"
	"fmt"
	"time"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/store"
)

// The registry's refusals: callers branch on them (errors.Is, errors.As).
var (
	// ErrExists: a device is registered under that id already.
	ErrExists = errors.New("already registered")
	// ErrNotFound: no device, proposal or accepted entity of that name.
	ErrNotFound = errors.New("not registered")
)

// KindConflictError refuses a kind that contradicts the one a device already has.
type KindConflictError struct {
	Name   string      // the proposal being accepted
	Device string      // the hearth device
	Have   device.Kind // the kind it has
	From   string      // where that kind comes from
	Want   device.Kind // the kind asked for
}

func (e *KindConflictError) Error() string {
	return fmt.Sprintf("proposal %q: device %q is a %s (%s), not a %s: accept it with --kind %s, or onto another --device",
		e.Name, e.Device, e.Have, e.From, e.Want, e.Have)
}

// Load reads every credential and accepted entity.
func Load(st *store.Store) (creds []broker.Credential, accepted []hadiscovery.Proposal, err error) {
	err = st.View(func(tx *store.Tx) error {
		if err := tx.EachCredential(func(c *store.Credential) error {
			creds = append(creds, broker.Credential{Device: c.Device, Kind: c.Kind, Hash: c.Hash})
			return nil
		}); err != nil {
			return err
		}
		return tx.EachAcceptedEntity(func(e *store.Entity) error { accepted = append(accepted, ProposalOf(e)); return nil })
	})
	return creds, accepted, err
}

// Proposals reads the discovery proposals kept from before.
func Proposals(st *store.Store) ([]hadiscovery.Proposal, error) {
	var out []hadiscovery.Proposal
	err := st.View(func(tx *store.Tx) error {
		return tx.EachProposal(func(e *store.Entity) error { out = append(out, ProposalOf(e)); return nil })
	})
	return out, err
}

// SaveProposal keeps what discovery learned from configTopic (nil: forgets it).
func SaveProposal(st *store.Store, configTopic string, p *hadiscovery.Proposal) error {
	return st.Update(func(tx *store.Tx) error {
		if p == nil {
			return tx.PutProposal(configTopic, nil)
		}
		return tx.PutProposal(configTopic, EntityOf(p))
	})
}

// Add makes a device's credential and keeps its hash; the password is returned,
// the only time it exists. ErrExists when the device is registered already.
func Add(st *store.Store, dev string, kind device.Kind) (broker.Credential, string, error) {
	cr, pw, err := broker.NewCredentials().Add(dev, kind) // checks the id and the kind
	if err != nil {
		return cr, "", err
	}
	err = st.Update(func(tx *store.Tx) error {
		if have, err := tx.Credential(dev); err != nil {
			return err
		} else if have != nil {
			return fmt.Errorf("device %q: %w (remove it first to make new credentials)", dev, ErrExists)
		}
		if err := tx.PutCredential(&store.Credential{Device: cr.Device, Kind: cr.Kind, Hash: cr.Hash}); err != nil {
			return err
		}
		return tx.Audit("device_added", map[string]string{"device": dev, "kind": string(kind), "at": time.Now().UTC().Format(time.RFC3339)})
	})
	return cr, pw, err
}

// Remove deletes a device's credential; ErrNotFound without one.
func Remove(st *store.Store, dev string) error {
	return st.Update(func(tx *store.Tx) error {
		if ok, err := tx.DeleteCredential(dev); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("device %q: %w", dev, ErrNotFound)
		}
		return tx.Audit("device_removed", map[string]string{"device": dev, "at": time.Now().UTC().Format(time.RFC3339)})
	})
}

// KeepAccepted stores p as accepted.
func KeepAccepted(st *store.Store, p *hadiscovery.Proposal) error {
	return st.Update(func(tx *store.Tx) error { return tx.PutAcceptedEntity(EntityOf(p)) })
}

// Unaccept deletes the accepted entity name and returns it; ErrNotFound without one.
func Unaccept(st *store.Store, name string) (hadiscovery.Proposal, error) {
	var p hadiscovery.Proposal
	err := st.Update(func(tx *store.Tx) error {
		e, err := tx.AcceptedEntity(name)
		if err != nil {
			return err
		}
		if e == nil {
			return fmt.Errorf("accepted entity %q: %w (see `hearth device list`)", name, ErrNotFound)
		}
		p = ProposalOf(e)
		if _, err := tx.DeleteAcceptedEntity(name); err != nil {
			return err
		}
		return tx.Audit("proposal_unaccepted", map[string]string{"name": name, "device": p.Mapping.Device,
			"at": time.Now().UTC().Format(time.RFC3339)})
	})
	return p, err
}

// KindSource says what kind a device already has, and where it comes from, or false.
type KindSource func(dev string) (kind device.Kind, from string, ok bool)

// Accepting applies the registry's rules to a proposal about to be accepted: the
// device of the request (when set) replaces the guess; a device that already has a
// kind keeps it (kindOf), and a requested kind that contradicts it is a
// *KindConflictError; the mapping must be valid.
func Accepting(p hadiscovery.Proposal, name, dev string, kind device.Kind, kindOf KindSource) (hadiscovery.Proposal, error) {
	if dev != "" {
		p.Mapping.Device = dev
	}
	if have, from, ok := kindOf(p.Mapping.Device); ok {
		if kind != "" && kind != have {
			return p, &KindConflictError{Name: name, Device: p.Mapping.Device, Have: have, From: from, Want: kind}
		}
		p.Mapping.Kind = have
	} else if kind != "" {
		p.Mapping.Kind = kind
	}
	if err := p.Mapping.Validate(); err != nil {
		return p, fmt.Errorf("proposal %q: %w", name, err)
	}
	return p, nil
}

// EntityOf is the store's record of a discovery proposal.
func EntityOf(p *hadiscovery.Proposal) *store.Entity {
	return &store.Entity{Mapping: store.EntityMapping{Source: p.Mapping.Source, Name: p.Mapping.Name, Device: p.Mapping.Device,
		Kind: p.Mapping.Kind, Signals: p.Mapping.Signals}, Property: p.Property, Signal: p.Signal, Reason: p.Reason, Problem: p.Problem,
		ConfigTopic: p.ConfigTopic, Component: p.Component, NodeID: p.NodeID, ObjectID: p.ObjectID, UniqueID: p.UniqueID,
		EntityName: p.EntityName, DeviceClass: p.DeviceClass, Unit: p.Unit, StateTopic: p.StateTopic, ValueTemplate: p.ValueTemplate,
		PayloadOn: p.PayloadOn, PayloadOff: p.PayloadOff, AvailabilityTopic: p.AvailabilityTopic, PayloadAvailable: p.PayloadAvailable,
		PayloadNotAvailable: p.PayloadNotAvailable, DeviceName: p.DeviceName, Model: p.Model, Manufacturer: p.Manufacturer,
		Identifiers: p.Identifiers}
}

// ProposalOf reads a stored entity back as a proposal.
func ProposalOf(e *store.Entity) hadiscovery.Proposal {
	return hadiscovery.Proposal{Mapping: devmqtt.Mapping{Source: e.Mapping.Source, Name: e.Mapping.Name, Device: e.Mapping.Device,
		Kind: e.Mapping.Kind, Signals: e.Mapping.Signals}, Property: e.Property, Signal: e.Signal, Reason: e.Reason, Problem: e.Problem,
		ConfigTopic: e.ConfigTopic, Component: e.Component, NodeID: e.NodeID, ObjectID: e.ObjectID, UniqueID: e.UniqueID,
		EntityName: e.EntityName, DeviceClass: e.DeviceClass, Unit: e.Unit, StateTopic: e.StateTopic, ValueTemplate: e.ValueTemplate,
		PayloadOn: e.PayloadOn, PayloadOff: e.PayloadOff, AvailabilityTopic: e.AvailabilityTopic, PayloadAvailable: e.PayloadAvailable,
		PayloadNotAvailable: e.PayloadNotAvailable, DeviceName: e.DeviceName, Model: e.Model, Manufacturer: e.Manufacturer,
		Identifiers: e.Identifiers}
}
