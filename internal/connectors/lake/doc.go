// Package lake holds the lake sink: topics to Parquet files
// (github.com/parquet-go/parquet-go) in S3-compatible object storage
// (internal/objstore), under Hive-style partitions
// <prefix><tenant>/<namespace>/<topic>/dt=YYYY-MM-DD/hour=HH/ of the
// messages' publish time (UTC). It registers itself with package
// connectors from init; server imports it.
//
// Messages are buffered per partition directory and written as one file
// when the buffer reaches rollSizeBytes or is rollIntervalMs old; a file is
// one PUT, so readers never see half of one. Messages are acknowledged
// after their file's PUT succeeded: a crash before that redelivers them
// into a new file (duplicates are possible; __message_id tells them).
//
// Files: settings.go, rows.go (JSON payloads to columns and the Parquet
// encoding), typed.go (columns typed from the registry's AVRO or JSON
// schema), roll.go (the roll loop both modes share), sink.go (append
// mode), upsert.go.
package lake
