//go:build !wasip1

package function

// Outside wasip1 there is no host: handlers registered with Handle are
// never called, and this file keeps the package buildable for go vet and
// documentation.
var _, _, _ = decodeUserConfig, handler, userConfig

func setAck(int32) error { return ErrNotWasm }
