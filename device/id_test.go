package device

import (
	"strings"
	"testing"
)

// Device ids are safe as URL path segments, file names and command-line arguments:
// ".", ".." and ids that start with anything but a letter or digit are refused.
func TestValidID(t *testing.T) {
	for _, id := range []string{"kitchen-fridge", "sim-oven", "a", "0", "Fridge_2.b", "x..y", strings.Repeat("a", MaxIDLen)} {
		if err := ValidID(id); err != nil {
			t.Errorf("ValidID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "...", ".hidden", "-rf", "_x", "a/b", "a b", "é", "a%2E", strings.Repeat("a", MaxIDLen+1)} {
		if err := ValidID(id); err == nil {
			t.Errorf("ValidID(%q) = nil, want an error", id)
		}
	}
}
