package wire

import (
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestReplacePrefixChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tab := crc32.MakeTable(crc32.Castagnoli)
	for _, n := range []int{0, 1, 7, 8, 100, 1024, 4096, 65537, 1 << 20} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(rng.Uint32())
		}
		for _, pl := range [][2]int{{0, 0}, {4, 4}, {10, 37}, {200, 13}} {
			oldP, newP := make([]byte, pl[0]), make([]byte, pl[1])
			for i := range oldP {
				oldP[i] = byte(rng.Uint32())
			}
			for i := range newP {
				newP[i] = byte(rng.Uint32())
			}
			whole := crc32.Update(crc32.Checksum(oldP, tab), tab, payload)
			want := crc32.Update(crc32.Checksum(newP, tab), tab, payload)
			if got := ReplacePrefixChecksum(whole, oldP, newP, n); got != want {
				t.Fatalf("payload %d, prefixes %v: got 0x%08x, want 0x%08x", n, pl, got, want)
			}
		}
	}
}

func TestStoredChecksum(t *testing.T) {
	hp := BuildPayload(nil, []byte("payload"))
	crc, ok := StoredChecksum(hp)
	if !ok || crc != crc32c(hp[6:]) {
		t.Fatalf("StoredChecksum = 0x%08x, %v; want 0x%08x, true", crc, ok, crc32c(hp[6:]))
	}
	if _, ok := StoredChecksum(hp[6:]); ok {
		t.Fatal("StoredChecksum found a checksum in hp without one")
	}
}

// BenchmarkChecksum compares computing a frame's checksum over the payload
// with deriving it from the stored one (ReplacePrefixChecksum).
func BenchmarkChecksum(b *testing.B) {
	oldP, newP := make([]byte, 40), make([]byte, 80)
	for _, n := range []int{1 << 10, 4 << 10, 16 << 10, 128 << 10} {
		payload := make([]byte, n)
		b.Run("full/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				crc32.Update(crc32c(newP), crc32cTable, payload)
			}
		})
		b.Run("replace/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				ReplacePrefixChecksum(12345, oldP, newP, n)
			}
		})
	}
}
