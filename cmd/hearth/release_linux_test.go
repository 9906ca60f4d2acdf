package main

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// statmShared reads the process's shared resident bytes, again and again from the
// same open file, and sees a file's pages mapped in.
func TestStatmShared(t *testing.T) {
	shared := statmShared()
	before, ok := shared()
	if !ok || before <= 0 {
		t.Fatalf("shared resident bytes: %d, %v", before, ok)
	}
	const size = 8 << 20
	f, err := os.Create(filepath.Join(t.TempDir(), "mapped"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	sum := 0
	for i := 0; i < size; i += os.Getpagesize() {
		sum += int(m[i])
	}
	after, ok := shared()
	if !ok || after-before < size/2 {
		t.Fatalf("shared resident bytes %d before reading %d MB of a mapped file, %d after (%v); sum %d", before, size>>20, after, ok, sum)
	}
}
