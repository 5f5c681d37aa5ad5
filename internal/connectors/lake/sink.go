package lake

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/messagebus/messagebus/internal/connectors"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

type sink struct{ s *Settings }

// buffer is one partition directory's file being filled.
type buffer struct {
	dir    string
	rows   []row
	msgs   []pulsar.Message
	bytes  int64
	opened time.Time
}

func (k *sink) codec() compress.Codec {
	switch k.s.Compression {
	case "snappy":
		return &parquet.Snappy
	case "none":
		return nil
	}
	return &parquet.Zstd
}

func (k *sink) Run(ctx context.Context, env *connectors.SinkEnv) error {
	o := objstore.S3Options{Bucket: k.s.Bucket, Region: k.s.Region, Endpoint: k.s.Endpoint, PathStyle: k.s.PathStyle}
	if k.s.AccessKeyID != "" {
		o.Credentials = credentials.NewStaticCredentialsProvider(k.s.AccessKeyID, k.s.SecretAccessKey, "")
	}
	store, err := objstore.NewS3(ctx, o)
	if err != nil {
		return err
	}
	if k.s.Mode == "upsert" {
		return k.runUpsert(ctx, env, store)
	}
	roll := time.Duration(k.s.RollIntervalMs) * time.Millisecond
	tick := time.NewTicker(max(roll/4, 50*time.Millisecond))
	defer tick.Stop()
	buffers := map[string]*buffer{}
	flush := func(b *buffer) error {
		data, err := encode(b.rows, k.codec())
		if err != nil {
			return err
		}
		// The first message's id names the file: a redelivery that fills
		// the same file again overwrites it rather than adding a copy.
		id := b.msgs[0].ID()
		key := fmt.Sprintf("%s%s/%d-%d-%d-%d-%d.parquet", k.s.Prefix, b.dir, env.Instance,
			id.LedgerID(), id.EntryID(), id.BatchIdx(), id.PartitionIdx())
		pctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
		err = store.Put(pctx, key, data, false)
		cancel()
		if err != nil {
			env.WriteFailed(err)
			return fmt.Errorf("lake put %s: %w", key, err)
		}
		env.Log.Debug("lake file written", "key", key, "rows", len(b.rows), "bytes", len(data))
		for _, m := range b.msgs {
			env.Ack(m)
		}
		delete(buffers, b.dir)
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			// Unwritten messages stay unacknowledged: they come again.
			return nil
		case m := <-env.Messages:
			dir := partitionDir(m.Topic(), m.PublishTime())
			b := buffers[dir]
			if b == nil {
				b = &buffer{dir: dir, opened: time.Now()}
				buffers[dir] = b
			}
			b.rows = append(b.rows, newRow(m.Topic(), m.Key(), messageID(m.ID()), m.PublishTime(), m.Properties(), m.Payload()))
			b.msgs = append(b.msgs, m)
			b.bytes += int64(len(m.Payload()))
			if b.bytes >= k.s.RollSizeBytes {
				if err := flush(b); err != nil {
					return err
				}
			}
		case now := <-tick.C:
			for _, b := range buffers {
				if now.Sub(b.opened) >= roll {
					if err := flush(b); err != nil {
						return err
					}
				}
			}
		}
	}
}

// messageID is ledger:entry:batch:partition, as the file sink writes it.
func messageID(id pulsar.MessageID) string {
	return strconv.FormatInt(id.LedgerID(), 10) + ":" + strconv.FormatInt(id.EntryID(), 10) + ":" +
		strconv.Itoa(int(id.BatchIdx())) + ":" + strconv.Itoa(int(id.PartitionIdx()))
}
