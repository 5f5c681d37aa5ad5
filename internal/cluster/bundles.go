package cluster

import (
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// DefaultBundles is the number of bundles of a namespace (Pulsar's
// defaultNumberOfNamespaceBundles).
const DefaultBundles = 4

// Bundle is a hash range [Lo, Hi) of a namespace (Hi is 0x100000000 for the
// last one; its name shows 0xffffffff, as Pulsar's).
type Bundle struct {
	Namespace string // tenant/namespace
	Lo, Hi    uint64
}

// Name is the bundle's range as Pulsar writes it: 0x00000000_0x40000000.
func (b Bundle) Name() string {
	return fmt.Sprintf("0x%08x_0x%08x", b.Lo, min(b.Hi, 0xffffffff))
}

func (b Bundle) String() string { return b.Namespace + "/" + b.Name() }

// Boundaries returns the n+1 boundaries of n equal bundles, as Pulsar's
// bundle split of the full range (the last is 0xffffffff).
func Boundaries(n int) []string {
	if n <= 0 {
		n = DefaultBundles
	}
	out := make([]string, 0, n+1)
	for _, b := range bundles("", n) {
		out = append(out, fmt.Sprintf("0x%08x", b.Lo))
	}
	return append(out, "0xffffffff")
}

func bundles(ns string, n int) []Bundle {
	out := make([]Bundle, n)
	step := uint64(1<<32) / uint64(n)
	for i := range out {
		out[i] = Bundle{Namespace: ns, Lo: uint64(i) * step, Hi: uint64(i+1) * step}
	}
	out[n-1].Hi = 1 << 32
	return out
}

// Hash is the position of a topic in its namespace's hash range: CRC-32
// of the full topic name, as Pulsar's NamespaceBundleFactory (Guava crc32).
func Hash(topic string) uint64 { return uint64(crc32.ChecksumIEEE([]byte(topic))) }

// BundleOf returns the bundle of topic (a full persistent:// name) in
// namespace ns split into n bundles.
func BundleOf(ns, topic string, n int) Bundle {
	if n <= 0 {
		n = DefaultBundles
	}
	h := Hash(topic)
	for _, b := range bundles(ns, n) {
		if h >= b.Lo && h < b.Hi {
			return b
		}
	}
	panic("unreachable")
}

// ParseBundle parses a bundle name (0x00000000_0x40000000) of namespace ns
// and checks it is one of the namespace's n bundles.
func ParseBundle(ns, name string, n int) (Bundle, error) {
	lo, hi, ok := strings.Cut(name, "_")
	if !ok || len(lo) != 10 || len(hi) != 10 {
		return Bundle{}, fmt.Errorf("invalid bundle range %q: want 0x<8 hex digits>_0x<8 hex digits>", name)
	}
	l, err1 := strconv.ParseUint(strings.TrimPrefix(lo, "0x"), 16, 64)
	h, err2 := strconv.ParseUint(strings.TrimPrefix(hi, "0x"), 16, 64)
	if err1 != nil || err2 != nil || !strings.HasPrefix(lo, "0x") || !strings.HasPrefix(hi, "0x") {
		return Bundle{}, fmt.Errorf("invalid bundle range %q: want 0x<lo>_0x<hi>", name)
	}
	for _, b := range bundles(ns, n) {
		if b.Lo == l && min(b.Hi, 0xffffffff) == h {
			return b, nil
		}
	}
	return Bundle{}, fmt.Errorf("bundle %s is not a bundle of namespace %s", name, ns)
}

// Bundles returns the bundles of namespace ns split into n.
func Bundles(ns string, n int) []Bundle {
	if n <= 0 {
		n = DefaultBundles
	}
	return bundles(ns, n)
}
