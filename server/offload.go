package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/tiered"
	"github.com/messagebus/messagebus/internal/objstore"
	"github.com/messagebus/messagebus/internal/pace"
)

// Offload configures tiered storage: sealed entries of topics offloaded to
// an object store. Off when Driver is empty.
type Offload struct {
	// Driver is "s3" (or Pulsar's "aws-s3"): any S3-compatible store.
	Driver   string
	Bucket   string
	Region   string // empty: the AWS SDK's default chain, else us-east-1
	Endpoint string // empty: AWS
	Prefix   string
	// PathStyle addresses the bucket in the path (most S3-compatible servers).
	PathStyle bool
	// DeletionLag: how long offloaded entries stay on local disk
	// (0: 4 hours, as Pulsar's managedLedgerOffloadDeletionLagMs; negative: none).
	DeletionLag time.Duration
	// CacheBytes is the budget of the block cache of offloaded data (0: 64 MiB).
	CacheBytes int64
	// MaxRate bounds the bytes per second offloads read and upload, over
	// all topics (0: no limit).
	MaxRate int64
	// ReadAheadBlocks is how many blocks past the one read are fetched
	// ahead for a reader of offloaded data (0: 4; negative: none).
	ReadAheadBlocks int
	// Objects replaces the driver's store (tests: a fault-injecting wrapper).
	Objects objstore.Store
	// WrapObjects, when set, wraps the driver's store (tests).
	WrapObjects func(objstore.Store) objstore.Store
}

// withOffload wraps st in tiered storage when configured.
func (s *Server) withOffload(st ledger.Store, reg prometheus.Registerer) (ledger.Store, error) {
	o := s.opts.Offload
	if o.Driver == "" && o.Objects == nil {
		return st, nil
	}
	objects := o.Objects
	if objects == nil {
		switch strings.ToLower(o.Driver) {
		case "s3", "aws-s3":
		default:
			return nil, fmt.Errorf("--offload-driver %q is not supported (supported: s3, aws-s3)", o.Driver)
		}
		if o.Bucket == "" {
			return nil, fmt.Errorf("--offload-driver s3 needs --offload-bucket")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s3, err := objstore.NewS3(ctx, objstore.S3Options{Bucket: o.Bucket, Region: o.Region, Endpoint: o.Endpoint,
			PathStyle: o.PathStyle, Metrics: objstore.NewMetrics(reg)})
		if err != nil {
			return nil, err
		}
		objects = s3
	}
	if o.WrapObjects != nil {
		objects = o.WrapObjects(objects)
	}
	return tiered.New(st, tiered.Options{
		Objects:     objects,
		Prefix:      o.Prefix,
		Dir:         filepath.Join(s.opts.DataDir, "offload"),
		DeletionLag: o.DeletionLag,
		// The broker sets each topic's lag when it loads the topic; this
		// covers a failed policy read.
		DeferDeletionAtOpen: 5 * time.Minute,
		CacheBytes:          o.CacheBytes,
		MaxRate:             o.MaxRate,
		NoYield:             s.opts.NoBackgroundYield,
		NoIdleIO:            !s.opts.BackgroundIdleIO,
		CPU:                 pace.CPU{Nice: s.opts.BackgroundNice, Idle: s.opts.BackgroundSchedIdle},
		ReadAheadBlocks:     o.ReadAheadBlocks,
		OpTimeout:           s.opts.OperationTimeout,
		Metrics:             tiered.NewMetrics(reg),
		Logger:              s.log.With("component", "offload"),
	})
}
