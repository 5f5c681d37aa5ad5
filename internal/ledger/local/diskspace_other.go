//go:build !unix

package local

import (
	"errors"
	"syscall"
)

func statDisk(string) (free, total uint64, err error) {
	return 0, 0, errors.New("free disk space unknown on this system")
}

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
