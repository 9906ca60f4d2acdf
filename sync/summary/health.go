package summary

import (
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// HealthCursor names the cursor holding the last local date (YYYYMMDD) a health
// message was made for.
const HealthCursor = "sync.health"

// health puts one Health message in the outbox per local day of the hub's clock: the
// first Step of each day, from the hub's day-close offset past midnight, makes it. A hub clock before ingest's trust floor (a Pi
// without RTC, before NTP) makes none: the date would be meaningless. It returns how
// many messages it made (0 or 1).
func (b *Builder) health(tx *store.Tx, allSim bool) (int, error) {
	now := b.now()
	if !trusted(now) {
		return 0, nil
	}
	date := now.Add(-b.offset).In(b.loc).Format(time.DateOnly) // at the hub's own minute of the night
	if dateNum(date) <= tx.Cursor(HealthCursor) {
		return 0, nil
	}
	if err := tx.SetCursor(HealthCursor, dateNum(date)); err != nil {
		return 0, err
	}
	if !b.allows(privacy.Usage, allSim) {
		b.withheld.WithLabelValues(TypeHealth).Inc()
		return 0, nil
	}
	msg := Health{Type: TypeHealth, Household: b.household, Date: date, At: now.UTC(), Store: b.st.Health(), Rules: b.rules}
	msg.ID = b.messageID("health", date)
	if err := b.enqueue(tx, msg.ID, TypeHealth, privacy.Usage, allSim, "", false, msg.At, msg); err != nil {
		return 0, err
	}
	b.made.WithLabelValues(TypeHealth).Inc()
	return 1, nil
}
