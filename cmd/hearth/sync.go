package main

// The upstream leg: summary builder → outbox delivery → transport (docs/sync.md).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/summary"
	"github.com/hearth-iot/hearth/sync/transport"
)

// buildTransport makes the transport sync.transport names, reading its secrets and
// TLS files (so that `config check` finds a missing or open one). It connects to
// nothing.
func buildTransport(cfg config.Config) (transport.Transport, error) {
	s := cfg.Sync
	switch s.Transport {
	case "segment":
		o := transport.SegmentOptions{Endpoint: s.Segment.Endpoint, WriteKey: s.Segment.WriteKey, WriteKeyFile: s.Segment.WriteKeyFile,
			Version: version, Timeout: s.Segment.Timeout.D()}
		if o.WriteKeyFile != "" {
			if _, err := readSecret(o.WriteKeyFile); err != nil {
				return nil, keyError{"sync.segment.write_key_file", err}
			}
		}
		tr, err := transport.NewSegment(o)
		if err != nil {
			return nil, keyError{"sync.segment", err}
		}
		return tr, nil
	case "https":
		if s.HTTPS.TokenFile != "" {
			if _, err := readSecret(s.HTTPS.TokenFile); err != nil {
				return nil, keyError{"sync.https.token_file", err}
			}
		}
		tr, err := transport.NewHTTPS(transport.HTTPSOptions{URL: s.HTTPS.URL, TokenFile: s.HTTPS.TokenFile,
			TLS:           transport.TLSFiles{CAFile: s.HTTPS.CAFile, CertFile: s.HTTPS.CertFile, KeyFile: s.HTTPS.KeyFile},
			MaxBatchBytes: s.HTTPS.MaxBatchBytes, Version: version, Timeout: s.HTTPS.Timeout.D()})
		if err != nil {
			return nil, keyError{"sync.https", err}
		}
		return tr, nil
	case "mqtt":
		var password string
		if s.MQTT.PasswordFile != "" {
			b, err := readSecret(s.MQTT.PasswordFile)
			if err != nil {
				return nil, keyError{"sync.mqtt.password_file", err}
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		tr, err := transport.NewMQTT(transport.MQTTOptions{Broker: s.MQTT.Broker, ClientID: s.MQTT.ClientID, Username: s.MQTT.Username,
			Password: password, TLS: transport.TLSFiles{CAFile: s.MQTT.CAFile, CertFile: s.MQTT.CertFile, KeyFile: s.MQTT.KeyFile},
			Topic: s.MQTT.Topic, MaxPayload: s.MQTT.MaxPayloadBytes, Window: s.MQTT.Window, AckTimeout: s.MQTT.AckTimeout.D(),
			Version: version})
		if err != nil {
			return nil, keyError{"sync.mqtt", err}
		}
		return tr, nil
	}
	tr, err := transport.NewFile(filepath.Join(cfg.DataDir, s.Dir))
	if err != nil {
		return nil, keyError{"sync.dir", err}
	}
	return tr, nil
}

// rulesVersion names the tag rule set every message carries: the first 12 hex digits
// of the sha256 of the rules file as loaded (of the built-in rules without one).
func rulesVersion(digest [32]byte) string {
	if digest == ([32]byte{}) {
		digest = sha256.Sum256(configs.Tags)
	}
	return hex.EncodeToString(digest[:6])
}

// buildSync makes the summary builder, the transport and delivery.
func (a *agent) buildSync(loc *time.Location) error {
	s := a.cfg.Sync
	live := a.ledger.Live()
	a.sum = summary.NewBuilder(a.st, &summary.Options{Location: loc, ConsentNow: live.Now, Key: a.key, Registerer: a.reg, Simulated: a.simulated,
		CloseGrace: s.DayCloseGrace.D(), CloseSpread: s.DayCloseSpread.D(), RulesVersion: rulesVersion(a.rulesDigest), TagScoreStep: s.TagScoreStep,
		MaxPendingBytes: s.OutboxMaxBytes})
	tr, err := buildTransport(a.cfg)
	if err != nil {
		return err
	}
	a.tr = tr
	if f, ok := tr.(*transport.File); ok {
		a.sink = f
	}
	r := s.Retry
	a.dl = outbox.New(a.st, tr, &outbox.Options{Household: a.sum.Household(), ConsentNow: live.Now, KeepPayloads: a.cfg.Privacy.PayloadKeep > 0, BatchAge: s.BatchAge.D(),
		BatchCount: s.BatchCount, BatchBytes: s.BatchBytes, InitialBackoff: r.Initial.D(), MaxBackoff: r.Max.D(),
		LongOutage: r.LongOutage.D(), ResumeSpread: r.ResumeSpread.D(), AuthRetry: r.AuthRetry.D(), MaxRetryAfter: r.MaxRetryAfter.D(),
		MaxBytesPerHour: s.MaxBytesPerHour, DeadLetterKeep: s.DeadLetterKeep, Logger: a.log, Registerer: a.reg})
	return nil
}

// summaryStep builds the summaries that are due (a supervised stage, every
// sync.interval) and tells delivery, which runs on its own (outbox.Delivery), when
// there is something new.
func (a *agent) summaryStep(context.Context) error {
	n, err := a.sum.Step()
	if n > 0 {
		a.dl.Notify()
	}
	return err
}

// flushSync delivers what can go at shutdown, within half of shutdown_timeout (at
// most 5s): what is not sent stays in the outbox for the next start.
func (a *agent) flushSync() {
	ctx, cancel := context.WithTimeout(context.Background(), min(a.cfg.ShutdownTimeout.D()/2, 5*time.Second))
	defer cancel()
	if err := a.dl.Flush(ctx); err != nil {
		a.log.Warn("outbox not flushed: kept for the next start", "err", err)
	}
	_ = a.tr.Close()
}

// degraded is what /readyz adds to "ready" while the hub works but needs a person:
// delivery paused because the receiver refused the credentials. Not "not ready":
// readings are still taken and kept (nothing is lost), and a restart would not fix a
// wrong key — a supervisor that restarts unready services must leave hearth alone.
func (a *agent) degraded() string {
	if why := a.dl.Health().Paused; why != "" {
		return fmt.Sprintf("upstream delivery paused: %s (fix sync.%s's key; nothing is lost)", why, a.cfg.Sync.Transport)
	}
	return ""
}

// SyncStatus is upstream delivery in /v1/status.
type SyncStatus struct {
	Transport        string    `json:"transport"`
	Paused           string    `json:"paused,omitempty"`
	QueuedMessages   int       `json:"queued_messages"`
	PendingBatches   int       `json:"pending_batches"`
	PendingMessages  int       `json:"pending_messages"` // in batches
	PendingBytes     int       `json:"pending_bytes"`
	DeadLetters      int       `json:"dead_letters"`
	OldestUnsentSecs float64   `json:"oldest_unsent_seconds"`
	LastSuccess      time.Time `json:"last_success,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorClass   string    `json:"last_error_class,omitempty"`
	LastErrorAt      time.Time `json:"last_error_at,omitzero"`
	Errors           uint64    `json:"errors"`
	BackoffSecs      float64   `json:"backoff_seconds"`
	OutageSince      time.Time `json:"outage_since,omitzero"`
}

func (a *agent) syncStatus() SyncStatus {
	h := a.dl.Health()
	s := SyncStatus{Transport: h.Transport, Paused: h.Paused, QueuedMessages: h.Pending.Queued, PendingBatches: h.Pending.Batches,
		PendingMessages: h.Pending.BatchMessages, PendingBytes: h.Pending.QueuedBytes + h.Pending.BatchBytes,
		DeadLetters: h.Pending.DeadLetters, LastSuccess: h.LastSuccess, LastError: h.LastError, LastErrorClass: h.LastErrorClass,
		LastErrorAt: h.LastErrorAt, Errors: h.Errors, BackoffSecs: h.Backoff.Seconds(), OutageSince: h.OutageSince}
	if !h.Pending.Oldest.IsZero() {
		s.OldestUnsentSecs = time.Since(h.Pending.Oldest).Seconds()
	}
	return s
}

// printSync is the sync part of `hearth status`.
func printSync(out *strings.Builder, s SyncStatus) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	}
	fmt.Fprintf(out, "sync (%s): last delivery %s · %d queued, %d in %d batch(es), %s pending · oldest unsent %s · %d dead letter(s)\n",
		s.Transport, ago(s.LastSuccess), s.QueuedMessages, s.PendingMessages, s.PendingBatches, humanBytes(int64(s.PendingBytes)),
		(time.Duration(s.OldestUnsentSecs) * time.Second).String(), s.DeadLetters)
	if s.Paused != "" {
		fmt.Fprintf(out, "  DELIVERY PAUSED: %s — fix the key in sync.%s; nothing is lost\n", s.Paused, s.Transport)
	}
	if s.LastError != "" {
		fmt.Fprintf(out, "  last error (%s) %s: %s\n", s.LastErrorClass, ago(s.LastErrorAt), s.LastError)
	}
	if s.BackoffSecs > 0 {
		fmt.Fprintf(out, "  next attempt in %s", (time.Duration(s.BackoffSecs) * time.Second).String())
		if !s.OutageSince.IsZero() {
			fmt.Fprintf(out, " (failing since %s)", ago(s.OutageSince))
		}
		out.WriteString("\n")
	}
}
