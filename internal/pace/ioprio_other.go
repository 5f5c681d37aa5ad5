//go:build !linux

package pace

func idleIO(fn func() error) error { return fn() }
