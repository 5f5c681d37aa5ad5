package replication

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire"
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
// [magic][crc32c][metaSize][metadata + additions][payload]. The additions
// are fields appended to the stored metadata, which protobuf merges (a
// repeated field gains an element, a later optional field replaces an
// earlier one): the source position property, replicated_from, and the
// remote's schema version when it differs.
func appendReplicated(dst, meta, payload []byte, local string, ledgerID, entryID int64, schemaVersion []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(dst[start:], wire.MagicCrc32c)
	dst = append(dst, meta...)
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
	if schemaVersion != nil {
		dst = protowire.AppendTag(dst, fieldSchemaVersion, protowire.BytesType)
		dst = protowire.AppendBytes(dst, schemaVersion)
	}
	binary.BigEndian.PutUint32(dst[start+6:], uint32(len(dst)-start-10))
	dst = append(dst, payload...)
	binary.BigEndian.PutUint32(dst[start+2:], crc32.Checksum(dst[start+6:], castagnoli))
	return dst
}

// prepare returns the entry as it is sent to the remote (appended to buf):
// its metadata with replicated_from and the source position, its payload
// untouched; ok is false for entries that are not to be sent to this
// remote (replicated here from elsewhere, markers, replicate_to without it).
func (r *Replicator) prepare(buf []byte, e ledger.Entry, l *link, schemas map[string][]byte) (hp []byte, msgs int, ok bool, err error) {
	meta, payload, err := wire.SplitPayload(e.Data)
	if err != nil {
		return buf, 0, false, err
	}
	m, err := scanMeta(meta, r.cfg.RemoteCluster)
	if err != nil {
		return buf, 0, false, fmt.Errorf("decode metadata: %w", err)
	}
	if m.replicated || m.marker || (m.otherTarget && !m.toThisRemote) {
		return buf, 0, false, nil
	}
	var sv []byte
	if len(m.schemaVersion) > 0 && r.cfg.Schema != nil {
		sv, err = r.remoteSchemaVersion(l, m.schemaVersion, schemas)
		if err != nil {
			return buf, 0, false, fmt.Errorf("%w of entry %d: %w", errSchema, e.ID, err)
		}
		if string(sv) == string(m.schemaVersion) {
			sv = nil // the same: nothing to replace
		}
	}
	out := appendReplicated(buf, meta, payload, r.cfg.LocalCluster, r.cfg.LedgerID, e.ID, sv)
	return out[len(buf):], m.msgs, true, nil
}
