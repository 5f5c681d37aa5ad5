//go:build unix

package local

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// statDisk returns the bytes available to this process and the size of the
// file system holding dir.
func statDisk(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}

// isNoSpace reports whether err is the file system running out of space
// (or of the user's quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
