package server

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/pebbledb"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.CheckpointInterval and CheckpointRetain.
const (
	DefaultCheckpointInterval = time.Hour
	DefaultCheckpointRetain   = 3
)

// Store names, as in <data-dir>/checkpoints/<store>/ and
// mb restore-checkpoint --store.
const (
	StoreMetadata = "metadata"
	StoreIndex    = "index"
	StoreDelayed  = "delayed"
)

// storeDir is where a store lives under the data dir.
func storeDir(dataDir, store string) string {
	switch store {
	case StoreMetadata:
		return filepath.Join(dataDir, "meta")
	case StoreIndex:
		return filepath.Join(dataDir, "ledger", "index")
	case StoreDelayed:
		return filepath.Join(dataDir, "delayed")
	}
	return ""
}

func checkpointRoot(dataDir, store string) string {
	return filepath.Join(dataDir, "checkpoints", store)
}

// withRestoreHint makes a damaged store's error say how to restore it.
func withRestoreHint(err error, dataDir string) error {
	var de *pebbledb.DamagedError
	if !errors.As(err, &de) {
		return err
	}
	store := StoreMetadata
	switch de.Store {
	case "index":
		store = StoreIndex
	case "delayed-delivery":
		store = StoreDelayed
	}
	de.Hint = fmt.Sprintf(`nothing was dropped and the broker did not start; stop here and run "mb restore-checkpoint --data-dir %s --store %s" (moves the damaged store aside, copies the newest checkpoint in; README: "Damaged metadata or index stores")`, dataDir, store)
	if store == StoreDelayed {
		de.Hint = fmt.Sprintf(`nothing was dropped and the broker did not start; run "mb restore-checkpoint --data-dir %s --store delayed" (moves the damaged index aside; it is rebuilt from the subscriptions; README: "Damaged metadata or index stores")`, dataDir)
	}
	return err
}

// checkpoints takes periodic checkpoints of the metadata store and the
// ledger index.
type checkpoints struct {
	dataDir  string
	interval time.Duration
	retain   int
	targets  []checkpointTarget
	failures *prometheus.CounterVec

	mu   sync.Mutex
	last map[string]time.Time // newest successful checkpoint per store

	started bool // run was started
	stop    chan struct{}
	done    chan struct{}
}

type checkpointTarget struct {
	store string
	take  func(root string, retain int) (string, error)
}

func newCheckpoints(dataDir string, interval time.Duration, retain int, reg prometheus.Registerer) *checkpoints {
	c := &checkpoints{
		dataDir: dataDir, interval: interval, retain: retain,
		last: map[string]time.Time{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mb_checkpoint_failures_total",
			Help: "Failed checkpoints of a store (metadata, index).",
		}, []string{"store"}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	reg.MustRegister(c.failures)
	return c
}

// add registers a store: its age metric, and its newest checkpoint on disk.
func (c *checkpoints) add(store string, take func(root string, retain int) (string, error), reg prometheus.Registerer) {
	c.targets = append(c.targets, checkpointTarget{store, take})
	c.failures.WithLabelValues(store)
	if cps, _ := pebbledb.Checkpoints(checkpointRoot(c.dataDir, store)); len(cps) > 0 {
		if t, ok := pebbledb.CheckpointTime(filepath.Base(cps[len(cps)-1])); ok {
			c.last[store] = t
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "mb_checkpoint_age_seconds",
		Help:        "Seconds since the newest checkpoint of a store; +Inf when it has none.",
		ConstLabels: prometheus.Labels{"store": store},
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		t, ok := c.last[store]
		if !ok {
			return math.Inf(1)
		}
		return time.Since(t).Seconds()
	}))
}

// takeAll checkpoints every store once; a failure is logged and counted.
func (c *checkpoints) takeAll(s *Server) {
	for _, t := range c.targets {
		path, err := t.take(checkpointRoot(c.dataDir, t.store), c.retain)
		if err != nil {
			c.failures.WithLabelValues(t.store).Inc()
			s.log.Error("checkpoint failed", "store", t.store, "err", err)
			continue
		}
		c.mu.Lock()
		c.last[t.store] = time.Now()
		c.mu.Unlock()
		s.log.Debug("checkpoint taken", "store", t.store, "path", path)
	}
}

// start runs the loop.
func (c *checkpoints) start(s *Server) {
	c.started = true
	go c.run(s)
}

func (c *checkpoints) run(s *Server) {
	defer close(c.done)
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			c.takeAll(s)
		}
	}
}

// halt stops the loop; the stores may be closed after it returns.
func (c *checkpoints) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if c.started {
		<-c.done
	}
}
