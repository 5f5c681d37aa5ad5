//go:build !linux

package pace

const lowCPUSupported = false

func lowerPriority(int, bool) {}
