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
	if (Consent{}).Allows(Usage) || (Consent{Usage: true}).Allows(Sensitive) || (Consent{Usage: true}).Allows("other") {
		t.Error("consent allows what it should not")
	}
	if !(Consent{Usage: true}).Allows(Usage) || !(Consent{Sensitive: true}).Allows(Sensitive) {
		t.Error("consent refuses what it should allow")
	}
}
