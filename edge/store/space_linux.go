package store

import "syscall"

// freeSpace is the bytes of dir's filesystem available to an unprivileged user.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// fileBlocks returns the size of the file at path and the bytes the filesystem
// has allocated to it.
func fileBlocks(path string) (size, allocated int64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Size, st.Blocks * 512, nil
}
