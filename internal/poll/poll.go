// Package poll is the one way hearth's tests wait for something asynchronous: they
// poll a condition with a deadline, never sleep a fixed time and assume.
package poll

import (
	"testing"
	"time"
)

// Every is how often Until checks its condition.
const Every = 5 * time.Millisecond

// Until calls cond every Every until it returns true, and fails the test (naming
// what it waited for) if that takes longer than d.
func Until(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(Every)
	}
}

// Try is Until without a test to fail: it reports whether cond became true within d
// (for a step that is repeated until answered, such as a Hello sent again).
func Try(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Every)
	}
	return true
}
