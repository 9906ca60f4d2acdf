package tagging

import (
	"fmt"
	"hash/maphash"
	"strings"

	"github.com/hearth-iot/hearth/edge/rollup"
	"github.com/hearth-iot/hearth/edge/store"
)

// dayCache keeps the rollup Days decoded by the last evaluation, each with a hash of
// its stored bytes: an evaluation decodes only the Days that changed since (today's,
// mostly). Decoding every Day of a 28-day window is most of an evaluation's cost
// otherwise. Entries not in the latest window are dropped, so it holds one window.
type dayCache struct {
	seed    maphash.Seed
	entries map[string]cachedDay
}

type cachedDay struct {
	sum uint64
	day *rollup.Day
}

// window returns the Days with a date in [from, to], like rollup.Window. The Days
// are shared with the cache: callers must not modify them.
func (c *dayCache) window(tx *store.Tx, from, to string) ([]*rollup.Day, error) {
	if c.entries == nil {
		c.seed = maphash.MakeSeed()
		c.entries = map[string]cachedDay{}
	}
	next := make(map[string]cachedDay, len(c.entries))
	var out []*rollup.Day
	err := tx.Range(store.Rollups, []byte(from), func(k, v []byte) error {
		date, _, _ := strings.Cut(string(k), "\x00")
		if date > to {
			return store.ErrStopRange
		}
		sum := maphash.Bytes(c.seed, v)
		e, ok := c.entries[string(k)]
		if !ok || e.sum != sum {
			d := new(rollup.Day)
			if err := rollup.DecodeDay(v, d); err != nil {
				return fmt.Errorf("rollup: record %q: %w", k, err)
			}
			e = cachedDay{sum, d}
		}
		next[string(k)] = e
		out = append(out, e.day)
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.entries = next
	return out, nil
}
