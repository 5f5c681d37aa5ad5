package kinesis

import (
	"errors"

	"github.com/messagebus/messagebus/internal/connectors"
)

// SourceSettings are the kinesis source's configs: the stream, and
// ShardSettings (initialPosition TRIM_HORIZON or LATEST, records after
// the source first started (its start time is stored); maxRecords 1-10000;
// Kinesis allows 5 GetRecords/s per shard).
type SourceSettings struct {
	connectors.AWSSettings
	connectors.ShardSettings
	// StreamName is the stream (or StreamARN).
	StreamName string `json:"streamName"`
	StreamARN  string `json:"streamArn"`
}

// Check fills the defaults and refuses bad values.
func (s *SourceSettings) Check() error {
	if s.StreamName == "" && s.StreamARN == "" {
		return errors.New("streamName (or streamArn) is required")
	}
	return s.CheckShards(10000)
}

// SinkSettings are the kinesis sink's configs.
type SinkSettings struct {
	connectors.AWSSettings
	StreamName string `json:"streamName"`
	StreamARN  string `json:"streamArn"`
	// BatchSize is the most records per PutRecords (1-500, default 500).
	BatchSize int `json:"batchSize"`
	// MaxRetries of a failed entry before the session restarts (default 10;
	// 100 ms doubling to 5 s between attempts).
	MaxRetries int `json:"maxRetries"`
}

// Check fills the defaults and refuses bad values.
func (s *SinkSettings) Check() error {
	if s.StreamName == "" && s.StreamARN == "" {
		return errors.New("streamName (or streamArn) is required")
	}
	if err := connectors.IntRange(&s.BatchSize, "batchSize", 500, 1, 500); err != nil {
		return err
	}
	return connectors.IntMin(&s.MaxRetries, "maxRetries", 10, 0)
}

func init() {
	connectors.Register(&connectors.Builtin{Name: "kinesis", Kind: connectors.KindSource, SecretKeys: connectors.AWSSecretKeys,
		Description: "Amazon Kinesis Data Streams to a topic: every shard, parents before children, KPL records de-aggregated; checkpoints per shard after the receipts",
		Settings:    func() any { return &SourceSettings{} },
		NewSource:   func(s any) connectors.Source { return &source{s: s.(*SourceSettings)} }})
	connectors.Register(&connectors.Builtin{Name: "kinesis", Kind: connectors.KindSink, Parallel: true, SecretKeys: connectors.AWSSecretKeys,
		Description: "Messages to an Amazon Kinesis data stream with PutRecords (partition key = message key); acknowledges after Kinesis accepted them",
		Settings:    func() any { return &SinkSettings{} },
		NewSink:     func(s any) connectors.Sink { return &sink{s: s.(*SinkSettings)} }})
}
