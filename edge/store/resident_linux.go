package store

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// releaseMapped advises the kernel that [addr, addr+n) of a shared file mapping is not
// needed (MADV_DONTNEED: the page table entries go, the page cache keeps the data).
// The raw syscall takes the address as an integer: bbolt gives the mapping's start as
// a uintptr, and converting it back to a pointer for unix.Madvise is what vet rightly
// warns about.
func releaseMapped(addr, n uintptr) error {
	n &^= uintptr(os.Getpagesize() - 1)
	if addr == 0 || n == 0 {
		return nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED); errno != 0 {
		return fmt.Errorf("store: madvise(DONTNEED) of the mapped file: %w", errno)
	}
	return nil
}
