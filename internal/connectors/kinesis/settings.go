package kinesis

import (
	"errors"

	"github.com/messagebus/messagebus/internal/connectors"
)

// SourceSettings are the kinesis source's configs.
type SourceSettings struct {
	connectors.AWSSettings
	// StreamName is the stream (or StreamARN).
	StreamName string `json:"streamName"`
	StreamARN  string `json:"streamArn"`
	// InitialPosition for shards without a checkpoint: TRIM_HORIZON (all
	// records kept, the default) or LATEST (records that arrive after the
	// source first started; its start time is stored).
	InitialPosition string `json:"initialPosition"`
	// MaxRecords per GetRecords (1-10000, default 1000).
	MaxRecords int32 `json:"maxRecords"`
	// PollIntervalMs is the pause after a GetRecords that found a shard
	// caught up (default 500; Kinesis allows 5 GetRecords/s per shard).
	PollIntervalMs int64 `json:"pollIntervalMs"`
	// ShardSyncIntervalMs is how often the shard list is read again to
	// find new shards (default 10000; a shard's end triggers it too).
	ShardSyncIntervalMs int64 `json:"shardSyncIntervalMs"`
}

// Check fills the defaults and refuses bad values.
func (s *SourceSettings) Check() error {
	if s.StreamName == "" && s.StreamARN == "" {
		return errors.New("streamName (or streamArn) is required")
	}
	switch s.InitialPosition {
	case "":
		s.InitialPosition = "TRIM_HORIZON"
	case "TRIM_HORIZON", "LATEST":
	default:
		return errors.New("initialPosition: TRIM_HORIZON or LATEST")
	}
	if s.MaxRecords == 0 {
		s.MaxRecords = 1000
	}
	if s.MaxRecords < 1 || s.MaxRecords > 10000 {
		return errors.New("maxRecords: 1 to 10000")
	}
	if s.PollIntervalMs == 0 {
		s.PollIntervalMs = 500
	}
	if s.ShardSyncIntervalMs == 0 {
		s.ShardSyncIntervalMs = 10000
	}
	if s.PollIntervalMs < 0 || s.ShardSyncIntervalMs < 0 {
		return errors.New("pollIntervalMs and shardSyncIntervalMs must not be negative")
	}
	return nil
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
	if s.BatchSize == 0 {
		s.BatchSize = 500
	}
	if s.BatchSize < 1 || s.BatchSize > 500 {
		return errors.New("batchSize: 1 to 500")
	}
	if s.MaxRetries == 0 {
		s.MaxRetries = 10
	}
	if s.MaxRetries < 0 {
		return errors.New("maxRetries must not be negative")
	}
	return nil
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
