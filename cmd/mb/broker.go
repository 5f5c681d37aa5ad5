package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/messagebus/messagebus/server"
)

// newBrokerCommand is mb broker: one broker of a cluster. It takes every
// flag of mb standalone (the data dir holds nothing but a scratch area)
// plus the cluster's.
func newBrokerCommand() *cobra.Command {
	cmd := newStandaloneCommand()
	v := viper.New()
	cmd.Use = "broker"
	cmd.Short = "Run one broker of a cluster (metadata in etcd, data in S3)"
	cmd.Long = `Run one stateless broker of a cluster. Brokers share one etcd (--metadata-store
etcd://...) and one S3 bucket (--storage s3 --bucket ...): entries are group-committed
into WAL objects in the bucket and indexed in etcd; a topic's bundle is owned by one
broker at a time (etcd lease + fencing token) and moves to another broker when its owner
dies, after --lease-ttl. Function and connector instances are spread over the brokers
whose workers are enabled (--functions-worker-enabled, --connectors-enabled, both on by
default), each run by one broker at a time. See README "Cluster mode".`
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadConfig(cmd, v); err != nil {
			return err
		}
		c, err := clusterOptionsFrom(v)
		if err != nil {
			return err
		}
		return runServer(v, c)
	}
	f := cmd.Flags()
	f.String("storage", "s3", "where entry data goes: s3 (any S3-compatible object store)")
	f.String("bucket", "", "S3 bucket of WAL objects (required)")
	f.String("endpoint", "", "endpoint of an S3-compatible server, e.g. http://127.0.0.1:7070 (empty: AWS)")
	f.String("region", "", "region of the bucket (empty: the AWS SDK's default chain, else us-east-1)")
	f.Bool("path-style", false, "address the bucket in the URL path (most S3-compatible servers need it)")
	f.String("object-prefix", "mb", "prefix of every object key")
	f.String("broker-id", "", "this broker's id in the cluster (default: advertised-address:broker port)")
	f.Duration("wal-max-delay", 5*time.Millisecond, "longest wait of an append before its group commit is cut")
	f.Int("wal-max-bytes", 4<<20, "group commit size that cuts a WAL object at once, in bytes")
	f.Duration("wal-rewrite-interval", 30*time.Second, "how often WAL data older than this is rewritten into per-topic segment objects (0: never)")
	f.Duration("wal-gc-interval", time.Minute, "how often WAL objects nothing points into any more are deleted (0: never)")
	f.Duration("orphan-sweep-interval", 5*time.Minute, "how often WAL and segment objects no etcd record leads to (left by a crash) are looked for; one is deleted when two sweeps at least 10 minutes apart found it (0: never)")
	f.Int("wal-max-inflight", 4, "WAL objects written at once (their etcd commits stay in order); 1 writes one at a time")
	f.Duration("lease-ttl", 10*time.Second, "etcd lease of this broker: its bundles move to other brokers this long after it dies")
	f.Int("bundles", 4, "bundles (hash ranges) per namespace; must be the same on every broker")
	f.Int64("wal-cache-size", 64<<20, "bytes of WAL object blocks cached in memory")
	return cmd
}

func clusterOptionsFrom(v *viper.Viper) (*server.Cluster, error) {
	c := &server.Cluster{
		BrokerID:    v.GetString("broker-id"),
		Storage:     v.GetString("storage"),
		Bucket:      v.GetString("bucket"),
		Region:      v.GetString("region"),
		Endpoint:    v.GetString("endpoint"),
		PathStyle:   v.GetBool("path-style"),
		Prefix:      v.GetString("object-prefix"),
		WALMaxDelay: v.GetDuration("wal-max-delay"),
		WALMaxBytes: v.GetInt("wal-max-bytes"),
		LeaseTTL:    v.GetDuration("lease-ttl"),
		Bundles:     v.GetInt("bundles"),
		CacheBytes:  v.GetInt64("wal-cache-size"),

		WALMaxInflight: v.GetInt("wal-max-inflight"),
		RewriteEvery:   zeroNever(v.GetDuration("wal-rewrite-interval")),
		GCEvery:        zeroNever(v.GetDuration("wal-gc-interval")),
		OrphanEvery:    zeroNever(v.GetDuration("orphan-sweep-interval")),
	}
	switch {
	case c.Storage != "s3":
		return nil, fmt.Errorf("--storage %q is not supported (supported: s3)", c.Storage)
	case c.Bucket == "":
		return nil, fmt.Errorf("mb broker needs --bucket")
	case v.GetString("metadata-store") == "" || v.GetString("metadata-store") == "embedded":
		return nil, fmt.Errorf("mb broker needs --metadata-store etcd://host:port[,host:port...]")
	case c.WALMaxDelay <= 0 || c.WALMaxBytes <= 0:
		return nil, fmt.Errorf("--wal-max-delay and --wal-max-bytes must be positive")
	case c.WALMaxInflight < 1 || c.WALMaxInflight > 64:
		return nil, fmt.Errorf("--wal-max-inflight must be between 1 and 64")
	case v.GetDuration("wal-rewrite-interval") < 0 || v.GetDuration("wal-gc-interval") < 0 || v.GetDuration("orphan-sweep-interval") < 0:
		return nil, fmt.Errorf("--wal-rewrite-interval, --wal-gc-interval and --orphan-sweep-interval must not be negative (0: never)")
	case c.LeaseTTL < 2*time.Second:
		return nil, fmt.Errorf("--lease-ttl must be at least 2s")
	case c.Bundles < 1 || c.Bundles > 1024:
		return nil, fmt.Errorf("--bundles must be between 1 and 1024")
	}
	return c, nil
}

// zeroNever maps a flag's 0 ("never") to the server's negative interval
// (its 0 is the default).
func zeroNever(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
