package cluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/messagebus/messagebus/internal/ledger/object"
)

// Format versions (docs/cluster.md).
const (
	walMagic        = "MBWL"
	walVersion      = 1
	walHeaderSize   = 8 // magic, version u16, flags u16
	indexVersion    = 1 // an index entry pointing into a WAL object
	segIndexVersion = 2 // an index entry naming a segment object
	topicVersion    = 1
	defaultPrefix   = "/mb/cluster/"
	defaultObjPrefx = "mb"
)

// keys builds the etcd keys of one store (prefix ends with "/").
type keys struct{ prefix string }

func (k keys) topic(name string) string { return k.prefix + "topics/" + url.PathEscape(name) }
func (k keys) topics() string           { return k.prefix + "topics/" }
func (k keys) indexDir(id int64) string { return fmt.Sprintf("%sindex/%016x/", k.prefix, id) }
func (k keys) index(id, first int64) string {
	return fmt.Sprintf("%s%016x", k.indexDir(id), first)
}
func (k keys) cursorDir(id int64) string { return fmt.Sprintf("%scursors/%016x/", k.prefix, id) }
func (k keys) cursor(id int64, name string) string {
	return k.cursorDir(id) + url.PathEscape(name)
}
func (k keys) pendingDir(id int64) string { return fmt.Sprintf("%spending/%016x/", k.prefix, id) }
func (k keys) pending(id int64, objKey string) string {
	return k.pendingDir(id) + url.PathEscape(objKey)
}
func (k keys) walRefsDir() string           { return k.prefix + "walrefs/" }
func (k keys) walRefs(walKey string) string { return k.walRefsDir() + walKey }
func (k keys) owner(topic string) string    { return k.prefix + "owners/topics/" + url.PathEscape(topic) }

func topicFromKey(k keys, key string) (string, error) {
	return url.PathUnescape(strings.TrimPrefix(key, k.topics()))
}

// topicRecord is the value of a topic key. The ledger id is the key's
// create revision (unique, and greater than any ledger's created before).
type topicRecord struct {
	V            int   `json:"v"`
	First        int64 `json:"first"`        // first entry not trimmed
	TrimmedBytes int64 `json:"trimmedBytes"` // bytes of the entries before First
}

// indexEntry locates the entries [First, Last] of one topic in a WAL
// object (version 1: WAL, Off, Len, N, CRC) or in a segment object
// (version 2: Seg, Size, N).
type indexEntry struct {
	V     int    `json:"v"`
	Seg   string `json:"seg,omitempty"`  // segment object key
	Size  int64  `json:"size,omitempty"` // segment object bytes
	WAL   string `json:"wal,omitempty"`  // WAL object key
	Off   int64  `json:"off"`            // block offset in the object
	Len   int64  `json:"len"`            // block length
	First int64  `json:"first"`          // first entry id
	Last  int64  `json:"last"`           // last entry id
	N     int    `json:"n"`              // entries
	CRC   uint32 `json:"crc"`            // CRC-32C of the block
	Cum   int64  `json:"cum"`            // bytes of entry data of the ledger through Last
}

func (e indexEntry) meta() object.BlockMeta {
	return object.BlockMeta{Off: e.Off, Len: e.Len, First: e.First, Last: e.Last, Entries: e.N, CRC: e.CRC}
}

// ref names a segment entry's object for the block cache.
func (e indexEntry) ref() object.ObjectRef {
	return object.ObjectRef{Key: e.Seg, Size: e.Size, First: e.First, Last: e.Last}
}

// decodeIndex reads an index entry of either version.
func decodeIndex(b []byte, what string, e *indexEntry) error {
	if err := json.Unmarshal(b, e); err != nil {
		return fmt.Errorf("cluster ledger: index entry %s: %w", what, err)
	}
	switch {
	case e.V == indexVersion && e.WAL != "", e.V == segIndexVersion && e.Seg != "":
		return nil
	}
	return fmt.Errorf("cluster ledger: index entry %s has version %d, this broker reads %d and %d", what, e.V, indexVersion, segIndexVersion)
}

func decodeJSON[T any](b []byte, what string, version int, v *T) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cluster ledger: %s: %w", what, err)
	}
	var probe struct {
		V int `json:"v"`
	}
	json.Unmarshal(b, &probe)
	if probe.V != version {
		return fmt.Errorf("cluster ledger: %s has version %d, this broker reads %d", what, probe.V, version)
	}
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
