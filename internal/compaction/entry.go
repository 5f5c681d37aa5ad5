package compaction

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"

	"github.com/messagebus/messagebus/internal/ledger"
)

// entryVersion is the first byte of every compacted entry.
const entryVersion = 1

// ErrMalformed is returned for a compacted entry that does not decode.
var ErrMalformed = errors.New("compaction: malformed compacted entry")

// Entry is one entry of a compacted ledger: an entry of the topic (ID is its
// entry id there) with the batch indexes that survived compaction.
type Entry struct {
	ID int64
	// Mask has bit i (word i/64, least significant first, as Java's BitSet
	// and the ack_set of the protocol) set when message i of the batch
	// survived; nil when every message did.
	Mask []int64
	// Data is the stored entry, as a client sent it or rebatched.
	Data []byte
}

// EncodeEntry lays out e as [version][uvarint id][uvarint words][words LE][data].
func EncodeEntry(e Entry) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+8*len(e.Mask)+len(e.Data))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, uint64(e.ID))
	b = binary.AppendUvarint(b, uint64(len(e.Mask)))
	for _, w := range e.Mask {
		b = binary.LittleEndian.AppendUint64(b, uint64(w))
	}
	return append(b, e.Data...)
}

// DecodeEntry decodes an entry written by EncodeEntry; Data and Mask do not
// alias b beyond Data.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) == 0 || b[0] != entryVersion {
		return Entry{}, fmt.Errorf("%w: version", ErrMalformed)
	}
	b = b[1:]
	id, n := binary.Uvarint(b)
	if n <= 0 || id > 1<<62 {
		return Entry{}, fmt.Errorf("%w: entry id", ErrMalformed)
	}
	b = b[n:]
	words, n := binary.Uvarint(b)
	if n <= 0 || words > uint64(len(b)-n)/8 {
		return Entry{}, fmt.Errorf("%w: mask", ErrMalformed)
	}
	b = b[n:]
	e := Entry{ID: int64(id)}
	if words > 0 {
		e.Mask = make([]int64, words)
		for i := range e.Mask {
			e.Mask[i] = int64(binary.LittleEndian.Uint64(b))
			b = b[8:]
		}
	}
	e.Data = b
	return e, nil
}

// LastIndex returns the highest surviving batch index of an entry of n
// messages.
func (e Entry) LastIndex(n int) int {
	if e.Mask == nil {
		return n - 1
	}
	for w := len(e.Mask) - 1; w >= 0; w-- {
		if v := uint64(e.Mask[w]); v != 0 {
			return w*64 + 63 - bits.LeadingZeros64(v)
		}
	}
	return -1
}

// Survives reports whether batch index i survived.
func (e Entry) Survives(i int) bool {
	if e.Mask == nil {
		return true
	}
	return i/64 < len(e.Mask) && e.Mask[i/64]&(1<<(i%64)) != 0
}

// ReadEntry reads and decodes compacted entry cid of l.
func ReadEntry(ctx context.Context, l ledger.Ledger, cid int64) (Entry, error) {
	es, err := l.Read(ctx, cid, 1, 0)
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 || es[0].ID != cid {
		return Entry{}, fmt.Errorf("compacted entry %d of %s: %w", cid, l.Name(), ledger.ErrNotFound)
	}
	return DecodeEntry(es[0].Data)
}

// Seek returns the id in the compacted ledger l of the first entry whose
// topic entry id is >= from (l.LastEntryID()+1 when none is), by binary
// search: compacted entries are in topic order.
func Seek(ctx context.Context, l ledger.Ledger, from int64) (int64, error) {
	n := l.LastEntryID() + 1
	var err error
	i := sort.Search(int(n), func(i int) bool {
		if err != nil {
			return true
		}
		e, rerr := ReadEntry(ctx, l, int64(i))
		if rerr != nil {
			err = rerr
			return true
		}
		return e.ID >= from
	})
	return int64(i), err
}
