package lake

import (
	"errors"
	"strings"

	"github.com/messagebus/messagebus/internal/connectors"
)

// Settings are the lake sink's configs.
type Settings struct {
	connectors.AWSSettings
	// Bucket is required; Prefix is put before every key ("" or ending in /).
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	// PathStyle addresses the bucket as endpoint/bucket (most S3-compatible
	// servers need it).
	PathStyle bool `json:"pathStyle"`
	// RollSizeBytes closes a file once its messages' payloads reach it
	// (default 64 MiB); RollIntervalMs once its first message waited that
	// long (default 60000).
	RollSizeBytes  int64 `json:"rollSizeBytes"`
	RollIntervalMs int64 `json:"rollIntervalMs"`
	// Compression of the column chunks: zstd (default), snappy or none.
	Compression string `json:"compression"`
	// Mode is append (default: every message a row, files partitioned by
	// hour) or upsert (the latest row per key, upsert.go).
	Mode string `json:"mode"`
}

// Check fills the defaults and refuses bad values.
func (s *Settings) Check() error {
	if err := connectors.Required(s.Bucket, "bucket"); err != nil {
		return err
	}
	if s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/") {
		s.Prefix += "/"
	}
	if strings.HasPrefix(s.Prefix, "/") {
		return errors.New("prefix must not start with /")
	}
	if err := connectors.IntRange(&s.RollSizeBytes, "rollSizeBytes", 64<<20, 1024, 1<<30); err != nil {
		return err
	}
	if err := connectors.IntMin(&s.RollIntervalMs, "rollIntervalMs", 60000, 100); err != nil {
		return err
	}
	if err := connectors.Choice(&s.Mode, "mode", "append", "upsert"); err != nil {
		return err
	}
	return connectors.Choice(&s.Compression, "compression", "zstd", "snappy", "none")
}

func init() {
	connectors.Register(&connectors.Builtin{Name: "lake", Kind: connectors.KindSink, Parallel: true, SecretKeys: connectors.AWSSecretKeys,
		Description: "Messages as Parquet files in S3 under dt=YYYY-MM-DD/hour=HH partitions, rolled by size and time; acknowledges after the file is stored",
		Settings:    func() any { return &Settings{} },
		NewSink:     func(s any) connectors.Sink { return &sink{s: s.(*Settings)} }})
}
