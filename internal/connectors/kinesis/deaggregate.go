package kinesis

import (
	"bytes"
	"crypto/md5"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// The Kinesis Producer Library (KPL) packs user records into one Kinesis
// record: the magic bytes, an AggregatedRecord protobuf, and the MD5 of
// that protobuf. Its schema (from the KPL's aggregation format doc):
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}

// kplMagic starts an aggregated record.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// userRecord is one record out of an aggregated one.
type userRecord struct {
	PartitionKey string
	Data         []byte
}

var errNotAggregated = errors.New("not a KPL aggregated record")

// deaggregate unpacks a KPL aggregated record. Data that is not one (no
// magic, a wrong checksum or a malformed protobuf) gives errNotAggregated
// and is taken as a plain record, as the KCL does.
func deaggregate(data []byte) ([]userRecord, error) {
	if len(data) < len(kplMagic)+md5.Size || !bytes.HasPrefix(data, kplMagic) {
		return nil, errNotAggregated
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, errNotAggregated
	}
	var keys []string
	type raw struct {
		keyIndex uint64
		data     []byte
		hasKey   bool
	}
	var recs []raw
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, errNotAggregated
		}
		body = body[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, errNotAggregated
			}
			keys = append(keys, string(v))
			body = body[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, errNotAggregated
			}
			r, ok := parseRecord(v)
			if !ok {
				return nil, errNotAggregated
			}
			recs = append(recs, raw{keyIndex: r.keyIndex, data: r.data, hasKey: r.hasKey})
			body = body[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, body)
			if n < 0 {
				return nil, errNotAggregated
			}
			body = body[n:]
		}
	}
	out := make([]userRecord, 0, len(recs))
	for _, r := range recs {
		if !r.hasKey || r.keyIndex >= uint64(len(keys)) {
			return nil, errNotAggregated
		}
		out = append(out, userRecord{PartitionKey: keys[r.keyIndex], Data: r.data})
	}
	return out, nil
}

type parsedRecord struct {
	keyIndex uint64
	hasKey   bool
	data     []byte
}

func parseRecord(b []byte) (parsedRecord, bool) {
	var r parsedRecord
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, false
			}
			r.keyIndex, r.hasKey = v, true
			b = b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, false
			}
			r.data = v
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, false
			}
			b = b[n:]
		}
	}
	return r, true
}

// Aggregate packs records the way the KPL does (tests and tools use it to
// make aggregated records).
func Aggregate(keys []string, data [][]byte) []byte {
	var body []byte
	index := map[string]uint64{}
	for _, k := range keys {
		if _, ok := index[k]; !ok {
			index[k] = uint64(len(index))
			body = protowire.AppendTag(body, 1, protowire.BytesType)
			body = protowire.AppendString(body, k)
		}
	}
	for i, d := range data {
		var rec []byte
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, index[keys[i]])
		rec = protowire.AppendTag(rec, 3, protowire.BytesType)
		rec = protowire.AppendBytes(rec, d)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, rec)
	}
	sum := md5.Sum(body)
	out := append(append([]byte{}, kplMagic...), body...)
	return append(out, sum[:]...)
}
