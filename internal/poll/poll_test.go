package poll

import (
	"testing"
	"time"
)

// fakeT records a failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, a ...any) {
	f.failed = format
	panic(f)
}

func TestUntil(t *testing.T) {
	n := 0
	Until(t, "three calls", time.Second, func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
	f := &fakeT{}
	func() {
		defer func() { _ = recover() }()
		Until(f, "never", 20*time.Millisecond, func() bool { return false })
	}()
	if f.failed == "" {
		t.Error("a condition that never holds did not fail the test")
	}
}
