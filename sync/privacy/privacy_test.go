package privacy

import "testing"

func TestPseudonymsAreKeyedAndStable(t *testing.T) {
	a := NewPseudonymizer([]byte("secret-a"))
	b := NewPseudonymizer([]byte("secret-b"))
	x := a.ID("device", "fridge1")
	if x != a.ID("device", "fridge1") {
		t.Error("pseudonym not stable")
	}
	if x == b.ID("device", "fridge1") {
		t.Error("another install's secret gives the same pseudonym")
	}
	if x == a.ID("household", "fridge1") || x == a.ID("device", "fridge2") {
		t.Error("namespaces or ids collide")
	}
	if len(x) != 26 || x == "fridge1" {
		t.Errorf("pseudonym %q", x)
	}
}

func TestConsent(t *testing.T) {
	for _, c := range []struct {
		name  string
		c     Consent
		cat   string
		allow bool
	}{
		{"nothing", Consent{}, Usage, false},
		{"usage", Consent{Usage: true}, Usage, true},
		{"usage is not tags", Consent{Usage: true}, Tags, false},
		{"unknown category", Consent{Usage: true, Tags: true, Sensitive: true}, "other", false},
		{"sensitive without tags", Consent{Sensitive: true}, Sensitive, false},
		{"sensitive with tags", Consent{Sensitive: true, Tags: true}, Sensitive, true},
		{"cross-border transport without consent", Consent{Usage: true, CrossBorderTransport: true}, Usage, false},
		{"cross-border transport with consent", Consent{Usage: true, CrossBorder: true, CrossBorderTransport: true}, Usage, true},
		{"erasure needs none", Consent{CrossBorderTransport: true}, Erasure, true},
	} {
		if got := c.c.Allows(c.cat); got != c.allow {
			t.Errorf("%s: Allows(%s) = %v", c.name, c.cat, got)
		}
	}
	// The simulated household leaves in undecided categories only.
	undecided := Consent{}
	withdrawn := Consent{Recorded: Set(0).With(Usage)}
	if !undecided.AllowsSimulated(Usage) || withdrawn.AllowsSimulated(Usage) || !withdrawn.AllowsSimulated(Tags) {
		t.Error("the simulated household's exemption ignores the household's recorded decision")
	}
}
