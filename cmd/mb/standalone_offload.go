package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/messagebus/messagebus/server"
)

// addOffloadFlags adds the tiered-storage flags of mb standalone.
func addOffloadFlags(f *pflag.FlagSet) {
	f.String("offload-driver", "", `tiered storage: "s3" offloads to an S3-compatible object store (empty: off)`)
	f.String("offload-bucket", "", "bucket of offloaded data (required with --offload-driver)")
	f.String("offload-region", "", "region of the bucket (empty: the AWS SDK's default chain, else us-east-1)")
	f.String("offload-endpoint", "", "endpoint of an S3-compatible server, e.g. http://127.0.0.1:7070 (empty: AWS)")
	f.String("offload-prefix", "", "prefix of every object key")
	f.Bool("offload-path-style", false, "address the bucket in the URL path (most S3-compatible servers need it)")
	f.Int64("offload-deletion-lag-ms", 4*60*60*1000, "how long offloaded entries stay on local disk, in ms (Pulsar's managedLedgerOffloadDeletionLagMs; 0: delete at once)")
	f.Int64("offload-cache-size", 64<<20, "bytes of offloaded data blocks cached in memory, blocks being read included")
	f.Int64("offload-max-rate", 0, "bytes per second offloads may read and upload, over all topics (0: no limit)")
	f.Int("offload-read-ahead", 4, "blocks read ahead for a sequential reader of offloaded data (0: none)")
}

func offloadOptionsFrom(v *viper.Viper) (server.Offload, error) {
	o := server.Offload{
		Driver:     v.GetString("offload-driver"),
		Bucket:     v.GetString("offload-bucket"),
		Region:     v.GetString("offload-region"),
		Endpoint:   v.GetString("offload-endpoint"),
		Prefix:     v.GetString("offload-prefix"),
		PathStyle:  v.GetBool("offload-path-style"),
		CacheBytes: v.GetInt64("offload-cache-size"),
		MaxRate:    v.GetInt64("offload-max-rate"),
	}
	switch ra := v.GetInt("offload-read-ahead"); {
	case ra < 0:
		return o, fmt.Errorf("--offload-read-ahead must be 0 or more")
	case ra == 0:
		o.ReadAheadBlocks = -1 // none
	default:
		o.ReadAheadBlocks = ra
	}
	if o.MaxRate < 0 {
		return o, fmt.Errorf("--offload-max-rate must be 0 (no limit) or more")
	}
	lag := v.GetInt64("offload-deletion-lag-ms")
	switch {
	case lag < 0:
		return o, fmt.Errorf("--offload-deletion-lag-ms must be 0 or more")
	case lag == 0:
		o.DeletionLag = -1 // at once
	default:
		o.DeletionLag = time.Duration(lag) * time.Millisecond
	}
	if o.Driver != "" && o.Bucket == "" {
		return o, fmt.Errorf("--offload-driver %s needs --offload-bucket", o.Driver)
	}
	if o.CacheBytes <= 0 {
		return o, fmt.Errorf("--offload-cache-size must be positive")
	}
	return o, nil
}
