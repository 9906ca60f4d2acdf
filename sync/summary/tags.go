package summary

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// tags turns the new entries of the tag log into tag changes, each only with the
// consent of its tag's category, and only when it tells something new: the tag turned
// on or off, changed status, or its score moved TagScoreStep from the score last sent
// (most rescores do not). When the set of active tags sent changes, a Profile follows.
// It returns how many messages it made.
func (b *Builder) tags(tx *store.Tx, allSim bool) (int, error) {
	tagCur := tx.Cursor(TagsCursor)
	var lastTag uint64
	var changes []store.TagChange
	if err := tx.TagChanges(tagCur, func(seq uint64, c *store.TagChange) error {
		changes = append(changes, *c)
		lastTag = seq
		return nil
	}); err != nil {
		return 0, err
	}
	if len(changes) == 0 {
		return 0, nil
	}
	before, err := tx.SentTags()
	if err != nil {
		return 0, err
	}
	n := 0
	category := map[string]string{} // of each tag sent in this step
	var last time.Time
	for _, c := range changes {
		t, err := storedTag(tx, c.Tag)
		if err != nil {
			return n, err
		}
		if c.Consent == "" { // a change logged before changes carried their category
			c.Consent = t.Consent
		}
		cat := tagCategory(c.Consent)
		if !b.allows(cat, allSim) {
			b.withheld.WithLabelValues(TypeTag).Inc()
			continue
		}
		sent, ok, err := tx.SentTag(c.Tag)
		if err != nil {
			return n, err
		}
		score := round(c.Score, 3)
		if ok && sent.Active == c.Active && sent.Status == c.Status && math.Abs(score-sent.Score) < b.step-1e-9 {
			b.skipped.Inc()
			continue
		}
		msg := TagChange{Type: TypeTag, Household: b.household, Tag: c.Tag, Score: score, Confidence: round(c.Confidence, 3),
			Active: c.Active, Status: c.Status, Reason: c.Reason, At: c.At.UTC(), Evidence: t.Evidence, Rules: b.rules}
		msg.ID = b.messageID("tag", c.Tag, c.At.UTC().Format(time.RFC3339Nano), c.Reason)
		// A change that only moves the score may be folded into the tag's next one
		// when the outbox is full; turning on or off never is.
		fold := ok && sent.Active == c.Active && sent.Status == c.Status
		if err := b.enqueue(tx, msg.ID, TypeTag, cat, allSim, c.Tag, fold, c.At, msg); err != nil {
			return n, err
		}
		if err := tx.SetSentTag(c.Tag, store.SentTag{Score: score, Active: c.Active, Status: c.Status}); err != nil {
			return n, err
		}
		category[c.Tag] = cat
		last = c.At
		b.made.WithLabelValues(TypeTag).Inc()
		n++
	}
	if err := tx.SetCursor(TagsCursor, lastTag); err != nil {
		return n, err
	}
	after, err := tx.SentTags()
	if err != nil {
		return n, err
	}
	if !slices.Equal(activeTags(before), activeTags(after)) {
		p := Profile{Type: TypeProfile, Household: b.household, At: last.UTC(), ActiveTags: activeTags(after),
			Scores: map[string]float64{}, Rules: b.rules}
		cat := privacy.Tags
		for _, name := range p.ActiveTags {
			p.Scores[name] = after[name].Score
			t, err := storedTag(tx, name)
			if err != nil {
				return n, err
			}
			if t.Consent == privacy.Sensitive || category[name] == privacy.Sensitive {
				cat = privacy.Sensitive // a profile needs the consent of every tag in it
			}
		}
		p.ID = b.messageID("profile", strings.Join(p.ActiveTags, ","), p.At.Format(time.RFC3339Nano))
		if err := b.enqueue(tx, p.ID, TypeProfile, cat, allSim, "", false, p.At, p); err != nil {
			return n, err
		}
		b.made.WithLabelValues(TypeProfile).Inc()
		n++
	}
	return n, nil
}

// storedTag is the tag as tagging last stored it (its evidence, its category); the
// zero Tag when there is none.
func storedTag(tx *store.Tx, name string) (store.Tag, error) {
	t, err := tx.Tag(name)
	if err != nil || t == nil {
		return store.Tag{}, err
	}
	return *t, nil
}

func activeTags(m map[string]store.SentTag) []string {
	var out []string
	for name, s := range m {
		if s.Active {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// takeLegacy moves the messages of the outbox bucket written before the delivery
// records (u64be enqueue time ‖ JSON) into the queue, in their order.
func takeLegacy(tx *store.Tx) error {
	var msgs []store.Message
	if err := tx.LegacyOutbox(func(enq time.Time, body []byte) error {
		var head struct {
			Type string    `json:"type"`
			ID   string    `json:"id"`
			At   time.Time `json:"at"`
		}
		if json.Unmarshal(body, &head) != nil || head.ID == "" {
			return nil // unreadable: it could never be sent
		}
		at := head.At
		if at.IsZero() {
			at = enq
		}
		msgs = append(msgs, store.Message{Enqueued: enq, Type: head.Type, ID: head.ID, Category: privacy.Usage, At: at.UTC(), Body: body})
		return nil
	}); err != nil {
		return err
	}
	for i := range msgs {
		if err := tx.Enqueue(&msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

// relieve keeps the outbox under MaxPendingBytes: when it is over, it folds queued
// score-only tag changes into the latest queued change of the same tag. It reports
// whether the outbox is still over the cap, in which case nothing new is made now.
func (b *Builder) relieve(tx *store.Tx) (full bool, err error) {
	st, err := tx.OutboxStats()
	if err != nil {
		return false, err
	}
	size := st.QueuedBytes + st.BatchBytes
	if size <= b.maxBytes {
		return false, nil
	}
	// Newest first: the latest change of each tag stays, every older foldable one goes.
	var queued []store.Message
	if err := tx.Queued(0, func(m store.Message) error { queued = append(queued, m); return nil }); err != nil {
		return false, err
	}
	seen := map[string]bool{}
	for i := len(queued) - 1; i >= 0 && size > b.maxBytes; i-- {
		m := queued[i]
		k := m.Type + "\x00" + m.Key
		if m.Key == "" {
			continue
		}
		if seen[k] && m.Fold {
			if err := tx.Dequeue(m.Seq); err != nil {
				return false, err
			}
			size -= len(m.Body)
			b.folded.Inc()
			continue
		}
		seen[k] = true
	}
	if size > b.maxBytes {
		b.deferred.Inc()
		return true, nil
	}
	return false, nil
}

// tagCategory is the consent category a tag's messages need: sensitive for a tag
// whose rule says so, else tags.
func tagCategory(rule string) string {
	if rule == privacy.Sensitive {
		return privacy.Sensitive
	}
	return privacy.Tags
}
