//go:build !linux

package store

// releaseMapped is a no-op where hearth does not ship.
func releaseMapped(addr, n uintptr) error { return nil }
