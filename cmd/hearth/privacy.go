package main

// The household's rights in the agent (docs/privacy.md): the pseudonym key, the
// consent in force, erasures carried out at a restart in place, the audit's own
// retention.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// errRestart is what run returns when the agent asked to restart in place.
var errRestart = errors.New("restart in place")

// initialConsent is the configuration's consent (the state before the household
// records a decision).
func initialConsent(cfg config.Config) privacy.Consent {
	c := cfg.Consent
	return privacy.Consent{Usage: c.Usage, Tags: c.Tags, Sensitive: c.Sensitive, CrossBorder: c.CrossBorder,
		CrossBorderTransport: cfg.CrossBorder()}
}

// mayCompute tells the tagging engine whether the household agreed to a category:
// a sensitive tag is never even computed without it.
func (a *agent) mayCompute(cat string) bool {
	if a.ledger == nil {
		return initialConsent(a.cfg).Granted(cat)
	}
	return a.ledger.Now().Granted(cat)
}

// openPrivacy loads the pseudonym key (moving an older store's secret into its own
// file), carries out the erasures asked for before this start (forget.go) and loads
// the consent in force.
func (a *agent) openPrivacy(initial privacy.Consent) error {
	keyFile := a.cfg.KeyFile()
	var legacy []byte
	var pending []store.ErasureRequest
	if err := a.st.View(func(tx *store.Tx) error {
		legacy = tx.LegacySecret()
		var err error
		pending, err = tx.PendingErasures()
		return err
	}); err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	household := false
	for _, r := range pending {
		household = household || r.Scope == scopeHousehold
	}
	// A household erasure writes the new key beside the old one first, and renames
	// it once the erasure is committed: finish that rename if a crash stopped it.
	if _, err := os.Stat(keyFile + nextKeySuffix); err == nil && !household {
		if err := os.Rename(keyFile+nextKeySuffix, keyFile); err != nil {
			return keyError{"privacy.key_file", err}
		}
	}
	key, created, err := privacy.LoadOrCreateKey(keyFile, legacy)
	if err != nil {
		return keyError{"privacy.key_file", err}
	}
	a.key = key
	if created {
		a.log.Info("pseudonym key file made", "component", "privacy", "file", keyFile, "from_store", len(legacy) == privacy.KeyBytes)
	}
	if len(pending) > 0 {
		if err := a.carryOutErasures(pending); err != nil {
			return err
		}
	}
	// The key is in its file: take it out of the store, and rewrite the store so
	// that no copy of it is left in a free page.
	if len(legacy) > 0 {
		var dropped bool
		if err := a.st.Update(func(tx *store.Tx) error { var err error; dropped, err = tx.DropLegacySecret(); return err }); err != nil {
			return fmt.Errorf("privacy: take the pseudonym key out of the store: %w", err)
		}
		if dropped {
			if _, err := a.st.Compact(); err != nil {
				return fmt.Errorf("privacy: rewrite the store without the old copy of the pseudonym key: %w", err)
			}
			a.log.Info("pseudonym key moved out of the store into its own file", "component", "privacy", "file", keyFile)
		}
	}
	a.ledger, err = privacy.NewLedger(a.st, privacy.LedgerOptions{Initial: initial,
		BatchID: func(msgs []store.Message) string { return outbox.BatchID(a.sum.Household(), msgs) },
		Exclusive: func(fn func() error) error {
			if a.dl == nil {
				return fn()
			}
			return a.dl.Exclusive(fn)
		}})
	return err
}

// pseudonyms names things upstream with the install's key.
func (a *agent) pseudonyms() *privacy.Pseudonymizer { return privacy.NewPseudonymizer(a.key) }

// wasForgotten reports whether the household had hearth forget device id (the
// store keeps its pseudonym, never its id).
func (a *agent) wasForgotten(id string) bool {
	var gone map[string]bool
	_ = a.st.View(func(tx *store.Tx) error { gone, _ = tx.Forgotten(); return nil })
	return gone[a.pseudonyms().ID("device", id)]
}

// expireAudit applies privacy.audit_keep and privacy.payload_keep (a stage).
func (a *agent) expireAudit(context.Context) error {
	return a.st.Update(func(tx *store.Tx) error {
		_, _, err := tx.ExpireAudit(time.Now(), a.cfg.Privacy.AuditKeep.D(), a.cfg.Privacy.PayloadKeep.D())
		return err
	})
}

// requestRestart asks run to shut down in order and start again in place.
func (a *agent) requestRestart() {
	select {
	case a.restart <- struct{}{}:
	default:
	}
}

// sameAddresses is the configuration for a restart in place: the listeners on the
// addresses they had (a port chosen by the system stays the same).
func (a *agent) sameAddresses() config.Config {
	cfg := a.cfg
	cfg.Admin.Listen = a.adminLn.Addr().String()
	if a.brokerLn != nil {
		cfg.Broker.Listen = a.brokerLn.Addr().String()
	}
	if a.tlsLn != nil {
		cfg.Broker.TLSListen = a.tlsLn.Addr().String()
	}
	return cfg
}
