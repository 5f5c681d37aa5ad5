package supervise

import (
	"context"
	"errors"
	"strconv"
)

// Unit is one instance of a function or connector: the worker's kind
// ("function", "source", "sink"), the fully qualified name
// (tenant/namespace/name) and the instance id.
type Unit struct {
	Kind string
	Name string
	ID   int
}

func (u Unit) String() string { return u.Kind + "/" + u.Name + "/" + strconv.Itoa(u.ID) }

// Workload is what a worker (the functions or the connectors manager)
// gives its Placement.
type Workload interface {
	// Kinds are the unit kinds the worker runs.
	Kinds() []string
	// Reconcile makes the worker's runners match the stored records
	// (changed through another node, in cluster mode) and returns every
	// instance that should run somewhere (its function or connector is not
	// stopped).
	Reconcile(ctx context.Context) ([]Unit, error)
	// RunUnit and StopUnit run or stop one instance on this node.
	RunUnit(u Unit)
	StopUnit(u Unit)
	// Report is u's status as this node publishes it for the others (nil
	// when u does not run here).
	Report(u Unit) []byte
}

// Remote is what the node running an instance published of it.
type Remote struct {
	// Worker is the id of the node running the instance; URL its admin
	// API's base URL.
	Worker, URL string
	// Report is the worker's Workload.Report (nil before the first one).
	Report []byte
}

// Placement decides which node runs each instance. Standalone, one node
// runs everything (Local); in cluster mode (package cluster) each instance
// is claimed by one live broker.
type Placement interface {
	// Attach registers a worker; called once per worker, before Start.
	Attach(w Workload)
	// Mine reports whether this node runs u now.
	Mine(u Unit) bool
	// Changed asks for a resync soon: the worker's records changed.
	Changed()
	// Remote returns, by instance id, the instances of kind/name that
	// other nodes run (empty for Local).
	Remote(ctx context.Context, kind, name string) (map[int]Remote, error)
	// Available is nil when some node runs instances of kind, else why not.
	Available(ctx context.Context, kind string) error
	// Local reports whether this is the one-node placement.
	Local() bool
}

// Local is the placement of a standalone node: it runs every instance.
type Local struct{}

// Attach implements Placement.
func (Local) Attach(Workload) {}

// Mine implements Placement: always true.
func (Local) Mine(Unit) bool { return true }

// Changed implements Placement.
func (Local) Changed() {}

// Remote implements Placement: no other node.
func (Local) Remote(context.Context, string, string) (map[int]Remote, error) { return nil, nil }

// Available implements Placement.
func (Local) Available(context.Context, string) error { return nil }

// Local implements Placement.
func (Local) Local() bool { return true }

// ErrNoWorker is returned (503) when no node of the cluster runs the
// worker a call needs.
var ErrNoWorker = errors.New("no worker")

// UnavailableError says why no node runs a kind of worker (503).
type UnavailableError struct{ Msg string }

func (e *UnavailableError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrNoWorker) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrNoWorker }

// ElsewhereError: the call is about an instance another node runs; the
// admin API sends the caller there (307 to URL, the node's admin API).
type ElsewhereError struct{ Worker, URL string }

func (e *ElsewhereError) Error() string {
	return "the instance runs on worker " + e.Worker + " (" + e.URL + "): send the call there"
}

// MineIDs returns the ids among 0..n-1 that p places on this node.
func MineIDs(p Placement, kind, name string, n int) []int {
	ids := make([]int, 0, n)
	for id := range n {
		if p.Mine(Unit{Kind: kind, Name: name, ID: id}) {
			ids = append(ids, id)
		}
	}
	return ids
}
