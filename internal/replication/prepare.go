package replication

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// MessageMetadata field numbers the replicator reads or adds (Pulsar's
// PulsarApi.proto).
const (
	fieldProperties         = 4
	fieldReplicatedFrom     = 5
	fieldReplicateTo        = 7
	fieldNumMessagesInBatch = 11
	fieldSchemaVersion      = 16
	fieldMarkerType         = 20
	kvKey, kvValue          = 1, 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// entryMeta is what prepare needs of an entry's metadata.
type entryMeta struct {
	replicated, marker, otherTarget bool
	toThisRemote                    bool
	msgs                            int
	schemaVersion                   []byte
}

// scanMeta reads the fields prepare needs without decoding the rest.
func scanMeta(meta []byte, remote string) (entryMeta, error) {
	m := entryMeta{msgs: 1}
	for len(meta) > 0 {
		num, typ, n := protowire.ConsumeTag(meta)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		meta = meta[n:]
		switch {
		case num == fieldReplicatedFrom && typ == protowire.BytesType:
			m.replicated = true
		case num == fieldMarkerType && typ == protowire.VarintType:
			m.marker = true
		case num == fieldReplicateTo && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(meta)
			if string(v) == remote {
				m.toThisRemote = true
			} else {
				m.otherTarget = true
			}
		case num == fieldSchemaVersion && typ == protowire.BytesType:
			m.schemaVersion, _ = protowire.ConsumeBytes(meta)
		case num == fieldNumMessagesInBatch && typ == protowire.VarintType:
			v, _ := protowire.ConsumeVarint(meta)
			m.msgs = int(int32(v))
		}
		n = protowire.ConsumeFieldValue(num, typ, meta)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		meta = meta[n:]
	}
	return m, nil
}

// appendReplicated appends to dst the entry as it is sent to the remote:
// [magic][crc32c][metaSize][metadata + additions][payload], the payload
// only when inline (else the caller sends it right after dst's bytes: the
// checksum covers it either way). The additions are fields appended to the
// stored metadata, which protobuf merges (a repeated field gains an
// element, a later optional field replaces an earlier one): the source
// position property, replicated_from, and the remote's schema version when
// it differs.
func appendReplicated(dst []byte, p prepared, local string, ledgerID, entryID int64, inline bool) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(dst[start:], wire.MagicCrc32c)
	dst = append(dst, p.meta...)
	var posBuf [48]byte
	pos := geo.AppendSourcePosition(posBuf[:0], ledgerID, entryID)
	kvLen := protowire.SizeTag(kvKey) + protowire.SizeBytes(len(geo.SourcePositionProperty)) + protowire.SizeTag(kvValue) + protowire.SizeBytes(len(pos))
	dst = protowire.AppendTag(dst, fieldProperties, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(kvLen))
	dst = protowire.AppendTag(dst, kvKey, protowire.BytesType)
	dst = protowire.AppendString(dst, geo.SourcePositionProperty)
	dst = protowire.AppendTag(dst, kvValue, protowire.BytesType)
	dst = protowire.AppendBytes(dst, pos)
	dst = protowire.AppendTag(dst, fieldReplicatedFrom, protowire.BytesType)
	dst = protowire.AppendString(dst, local)
	if p.schemaVersion != nil {
		dst = protowire.AppendTag(dst, fieldSchemaVersion, protowire.BytesType)
		dst = protowire.AppendBytes(dst, p.schemaVersion)
	}
	binary.BigEndian.PutUint32(dst[start+6:], uint32(len(dst)-start-10))
	var crc uint32
	if p.hasCRC && len(p.payload) >= checksumReplaceMin {
		// The stored checksum covers the payload: derived from it, the
		// payload is not read (a pass over every replicated byte saved).
		crc = wire.ReplacePrefixChecksum(p.crc, p.prefix, dst[start+6:], len(p.payload))
	} else {
		crc = crc32.Update(crc32.Checksum(dst[start+6:], castagnoli), castagnoli, p.payload)
	}
	binary.BigEndian.PutUint32(dst[start+2:], crc)
	if inline {
		dst = append(dst, p.payload...)
	}
	return dst
}

// checksumReplaceMin is the payload size from which a frame's checksum is
// derived from the stored one rather than computed over the payload: about
// 130 ns whatever the size, the length of a pass over 1.5 KiB
// (wire.BenchmarkChecksum).
const checksumReplaceMin = 2 << 10

// prepared is an entry about to be sent: its stored metadata and payload
// (slices of the entry, not copies), how many messages it holds, and the
// remote's schema version when it differs from the stored one.
type prepared struct {
	meta, payload, schemaVersion []byte
	// crc is the stored entry's checksum over prefix (its metadata size
	// and metadata) and payload, when hasCRC.
	crc    uint32
	hasCRC bool
	prefix []byte
	msgs   int
	marker bool // CommandSend.marker, as Pulsar's replicator sends a marker
}

// size is the length of the entry as sent (what appendReplicated appends
// with the payload inline), without building it.
func (p prepared) size(local string, ledgerID, entryID int64) int {
	var posBuf [48]byte
	pos := geo.AppendSourcePosition(posBuf[:0], ledgerID, entryID)
	kvLen := protowire.SizeTag(kvKey) + protowire.SizeBytes(len(geo.SourcePositionProperty)) + protowire.SizeTag(kvValue) + protowire.SizeBytes(len(pos))
	n := 10 + len(p.meta) + protowire.SizeTag(fieldProperties) + protowire.SizeBytes(kvLen) +
		protowire.SizeTag(fieldReplicatedFrom) + protowire.SizeBytes(len(local)) + len(p.payload)
	if p.schemaVersion != nil {
		n += protowire.SizeTag(fieldSchemaVersion) + protowire.SizeBytes(len(p.schemaVersion))
	}
	return n
}

// inspect reads what sending an entry needs; ok is false for entries that
// are not to be sent to this remote (replicated here from elsewhere,
// replicate_to without it).
func (r *Replicator) inspect(e ledger.Entry, l *link, schemas map[string][]byte) (p prepared, ok bool, err error) {
	meta, payload, err := wire.SplitPayload(e.Data)
	if err != nil {
		return p, false, err
	}
	m, err := scanMeta(meta, r.cfg.RemoteCluster)
	if err != nil {
		return p, false, fmt.Errorf("decode metadata: %w", err)
	}
	// Markers are replicated like entries (replicated subscriptions),
	// within their replicate_to; those that arrived by replication are not.
	if m.replicated || (m.otherTarget && !m.toThisRemote) {
		return p, false, nil
	}
	var sv []byte
	if len(m.schemaVersion) > 0 && r.cfg.Schema != nil {
		sv, err = r.remoteSchemaVersion(l, m.schemaVersion, schemas)
		if err != nil {
			return p, false, fmt.Errorf("%w of entry %d: %w", errSchema, e.ID, err)
		}
		if string(sv) == string(m.schemaVersion) {
			sv = nil // the same: nothing to replace
		}
	}
	p = prepared{meta: meta, payload: payload, schemaVersion: sv, msgs: m.msgs, marker: m.marker}
	// The stored checksum was verified when the entry was published (and
	// the ledger's own checksum when it was read back).
	if crc, ok := wire.StoredChecksum(e.Data); ok {
		end := len(e.Data) - len(payload)
		p.crc, p.hasCRC, p.prefix = crc, true, e.Data[end-len(meta)-4:end]
	}
	return p, true, nil
}

// prepare returns the entry as it is sent to the remote, in one piece
// (appended to buf): its metadata with replicated_from and the source
// position, its payload untouched; ok as inspect's.
func (r *Replicator) prepare(buf []byte, e ledger.Entry, l *link, schemas map[string][]byte) (hp []byte, msgs int, ok bool, err error) {
	p, ok, err := r.inspect(e, l, schemas)
	if !ok {
		return buf, 0, false, err
	}
	out := appendReplicated(buf, p, r.cfg.LocalCluster, r.cfg.LedgerID, e.ID, true)
	return out[len(buf):], p.msgs, true, nil
}

// zeroCopyMin is the payload size from which a payload is not copied into
// the frames of a read but written from the entry itself (writev): below
// it, one more iovec costs more than the copy.
const zeroCopyMin = 2 << 10

// appendFrame appends the SEND frame of entry id to dst. A payload of at
// least zeroCopyMin bytes (when zeroCopy) is left out and returned as
// tail, to be written right after dst's bytes; size is the entry's length
// as sent.
func (r *Replicator) appendFrame(dst []byte, cmd *pb.BaseCommand, p prepared, id int64, zeroCopy bool) (out, tail []byte, size int) {
	size = p.size(r.cfg.LocalCluster, r.cfg.LedgerID, id)
	inline := !zeroCopy || len(p.payload) < zeroCopyMin
	at := len(dst)
	dst = wire.AppendCommand(dst, cmd)
	dst = appendReplicated(dst, p, r.cfg.LocalCluster, r.cfg.LedgerID, id, inline)
	if !inline {
		tail = p.payload
	}
	// The frame's total size counts the payload wherever it is.
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4+len(tail)))
	return dst, tail, size
}
