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
	sc := &schemas{env: env, known: map[string]*valueSchema{}}
	// The directory of the message before, which most messages share.
	var lastTopic, lastDir string
	var lastHour time.Time
	dirOf := func(m pulsar.Message) string {
		if h := m.PublishTime().Truncate(time.Hour); m.Topic() != lastTopic || !h.Equal(lastHour) || lastDir == "" {
			lastTopic, lastHour, lastDir = m.Topic(), h, partitionDir(m.Topic(), m.PublishTime())
		}
		return lastDir
	}
	return k.rollLoop(ctx, env, false,
		func(ctx context.Context, m pulsar.Message) (string, error) {
			vs, err := sc.of(ctx, m)
			return batchKey(dirOf(m), vs), err
		},
		func(ctx context.Context, _ string, m pulsar.Message, hint int) (batch, error) {
			vs, err := sc.of(ctx, m) // known by now
			return &file{k: k, env: env, store: store, dir: dirOf(m), vs: vs, rows: make([]row, 0, hint)}, err
		})
}

// file is one partition directory's file being filled (append mode).
type file struct {
	k     *sink
	env   *connectors.SinkEnv
	store objstore.Store
	dir   string
	vs    *valueSchema // the messages' schema when it types columns
	rows  []row
	first pulsar.MessageID
}

func (f *file) add(m pulsar.Message) {
	if f.first == nil {
		f.first = m.ID()
	}
	if f.vs == nil {
		f.rows = append(f.rows, newAppendRow(m.Topic(), m.Key(), messageID(m.ID()), m.PublishTime(), m.Properties(), m.Payload()))
		return
	}
	r := row{topic: m.Topic(), key: m.Key(), messageID: messageID(m.ID()), publish: m.PublishTime(), properties: m.Properties()}
	vals, err := f.vs.values(m.Payload())
	if err != nil {
		// Kept whole in __value rather than lost.
		f.env.Log.Warn("lake: payload does not match its schema; written to __value", "topic", m.Topic(), "message", r.messageID, "error", err)
		r.value = m.Payload()
	} else {
		r.typed = vals
	}
	f.rows = append(f.rows, r)
}

func (f *file) write(ctx context.Context) error {
	data, err := encode(f.rows, f.vs, f.k.codec())
	if err != nil {
		return err
	}
	// The first message's id names the file: a redelivery that fills
	// the same file again overwrites it rather than adding a copy.
	id := f.first
	key := fmt.Sprintf("%s%s/%d-%d-%d-%d-%d.parquet", f.k.s.Prefix, f.dir, f.env.Instance,
		id.LedgerID(), id.EntryID(), id.BatchIdx(), id.PartitionIdx())
	pctx, cancel := context.WithTimeout(ctx, connectors.CallTimeout)
	err = f.store.Put(pctx, key, data, false)
	cancel()
	if err != nil {
		return fmt.Errorf("lake put %s: %w", key, err)
	}
	f.env.Log.Debug("lake file written", "key", key, "rows", len(f.rows), "bytes", len(data))
	return nil
}

// messageID is ledger:entry:batch:partition, as the file sink writes it.
func messageID(id pulsar.MessageID) string {
	return strconv.FormatInt(id.LedgerID(), 10) + ":" + strconv.FormatInt(id.EntryID(), 10) + ":" +
		strconv.Itoa(int(id.BatchIdx())) + ":" + strconv.Itoa(int(id.PartitionIdx()))
}
