//go:build !linux

package pace

const lowCPUSupported = false

func setNice(int) {}
