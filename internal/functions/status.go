package functions

import (
	"context"
	"fmt"

	"github.com/messagebus/messagebus/internal/supervise"
)

// JSON shapes of Pulsar's FunctionStatus and FunctionStats, as pulsar-admin
// prints them.

// FunctionStatus answers .../status.
type FunctionStatus struct {
	NumInstances int              `json:"numInstances"`
	NumRunning   int              `json:"numRunning"`
	Instances    []InstanceStatus `json:"instances"`
}

// InstanceStatus is one instance in FunctionStatus.
type InstanceStatus struct {
	InstanceID int                `json:"instanceId"`
	Status     InstanceStatusData `json:"status"`
}

// InstanceStatusData is what Pulsar's FunctionInstanceStatusData holds.
type InstanceStatusData struct {
	Running                  bool             `json:"running"`
	Error                    string           `json:"error"`
	NumRestarts              int64            `json:"numRestarts"`
	NumReceived              int64            `json:"numReceived"`
	NumSuccessfullyProcessed int64            `json:"numSuccessfullyProcessed"`
	NumUserExceptions        int64            `json:"numUserExceptions"`
	LatestUserExceptions     []ExceptionEntry `json:"latestUserExceptions"`
	NumSystemExceptions      int64            `json:"numSystemExceptions"`
	LatestSystemExceptions   []ExceptionEntry `json:"latestSystemExceptions"`
	AverageLatency           float64          `json:"averageLatency"`
	LastInvocationTime       int64            `json:"lastInvocationTime"`
	WorkerID                 string           `json:"workerId"`
	// InProcess (MessageBus): the instance reads its inputs in process,
	// through the broker's own dispatcher, instead of the client path.
	InProcess bool `json:"inProcess"`
}

// ExceptionEntry is one recent failure.
type ExceptionEntry = supervise.ExceptionEntry

// FunctionStats answers .../stats.
type FunctionStats struct {
	ReceivedTotal              int64           `json:"receivedTotal"`
	ProcessedSuccessfullyTotal int64           `json:"processedSuccessfullyTotal"`
	SystemExceptionsTotal      int64           `json:"systemExceptionsTotal"`
	UserExceptionsTotal        int64           `json:"userExceptionsTotal"`
	AvgProcessLatency          float64         `json:"avgProcessLatency"`
	LastInvocation             int64           `json:"lastInvocation"`
	Instances                  []InstanceStats `json:"instances"`
}

// InstanceStats is one instance in FunctionStats.
type InstanceStats struct {
	InstanceID int          `json:"instanceId"`
	Metrics    InstanceData `json:"metrics"`
}

// InstanceData is Pulsar's FunctionInstanceStatsData (the totals).
type InstanceData struct {
	ReceivedTotal              int64             `json:"receivedTotal"`
	ProcessedSuccessfullyTotal int64             `json:"processedSuccessfullyTotal"`
	SystemExceptionsTotal      int64             `json:"systemExceptionsTotal"`
	UserExceptionsTotal        int64             `json:"userExceptionsTotal"`
	AvgProcessLatency          float64           `json:"avgProcessLatency"`
	LastInvocation             int64             `json:"lastInvocation"`
	UserMetrics                map[string]string `json:"userMetrics"`
}

// StateValue is Pulsar's FunctionState: a counter has NumberValue set.
type StateValue struct {
	Key         string `json:"key"`
	StringValue string `json:"stringValue,omitempty"`
	ByteValue   []byte `json:"byteValue,omitempty"`
	NumberValue *int64 `json:"numberValue,omitempty"`
	Version     int64  `json:"version"`
}

// instancesOf returns the function's record and its instances (nil for a
// stopped one).
func (m *Manager) instancesOf(ctx context.Context, fqfn string) (Record, []*instance, error) {
	rec, _, err := m.store.get(ctx, fqfn)
	if err != nil {
		return Record{}, nil, err
	}
	insts := make([]*instance, rec.Config.Parallelism)
	if r := m.runner(fqfn); r != nil {
		for id := range insts {
			insts[id], _ = r.instances.At(id)
		}
	}
	return rec, insts, nil
}

func pick[T any](all []T, instance int, fqfn string) ([]T, error) {
	if instance < 0 {
		return all, nil
	}
	if instance >= len(all) {
		return nil, &NotFoundError{Msg: fmt.Sprintf("function %s has no instance %d", fqfn, instance)}
	}
	return all[instance : instance+1], nil
}

// Status reports every instance (instance < 0) or one. In cluster mode an
// instance another broker runs is shown as that broker last published it.
func (m *Manager) Status(ctx context.Context, fqfn string, instance int) (FunctionStatus, error) {
	rec, insts, err := m.instancesOf(ctx, fqfn)
	if err != nil {
		return FunctionStatus{}, err
	}
	remote, err := m.remoteOf(ctx, fqfn, insts)
	if err != nil {
		return FunctionStatus{}, err
	}
	st := FunctionStatus{NumInstances: len(insts), Instances: []InstanceStatus{}}
	for id, i := range insts {
		s := InstanceStatus{InstanceID: id}
		if i != nil {
			s.Status = m.instanceStatus(i)
		} else if rep, ok := remote[id]; ok {
			s.Status = rep.Status
		} else {
			s.Status = InstanceStatusData{WorkerID: m.cfg.WorkerID,
				LatestUserExceptions: []ExceptionEntry{}, LatestSystemExceptions: []ExceptionEntry{}, Error: "stopped"}
			if !m.place.Local() {
				s.Status.WorkerID = ""
				if !rec.Stopped {
					s.Status.Error = notAssigned
				}
			}
		}
		if s.Status.Running {
			st.NumRunning++
		}
		st.Instances = append(st.Instances, s)
	}
	st.Instances, err = pick(st.Instances, instance, fqfn)
	return st, err
}

// notAssigned is the status error of an instance no broker runs yet.
const notAssigned = "not running: no worker has taken this instance yet"

// remoteOf returns the published reports of the instances not running
// here (nil standalone).
func (m *Manager) remoteOf(ctx context.Context, fqfn string, insts []*instance) (map[int]report, error) {
	if m.place.Local() {
		return nil, nil
	}
	for _, i := range insts {
		if i == nil {
			return m.remote(ctx, fqfn)
		}
	}
	return nil, nil
}

// instanceStatus is a running instance's status.
func (m *Manager) instanceStatus(i *instance) InstanceStatusData {
	d := InstanceStatusData{WorkerID: m.cfg.WorkerID}
	d.Running = i.Running.Load()
	d.NumRestarts = i.Restarts.Load()
	d.NumReceived = i.received.Load()
	d.NumSuccessfullyProcessed = i.processed.Load()
	d.NumUserExceptions = i.userExceptions.Load()
	d.NumSystemExceptions = i.sysExceptions.Load()
	d.AverageLatency = avgMillis(i)
	d.LastInvocationTime = i.lastInvocation.Load()
	d.Error = i.LastError()
	d.InProcess = i.inProcess.Load()
	i.mu.Lock()
	d.LatestUserExceptions = append([]ExceptionEntry{}, i.userErrs...)
	d.LatestSystemExceptions = append([]ExceptionEntry{}, i.sysErrs...)
	i.mu.Unlock()
	return d
}

// instanceStats is a running instance's totals.
func instanceStats(i *instance) InstanceData {
	return InstanceData{UserMetrics: map[string]string{},
		ReceivedTotal:              i.received.Load(),
		ProcessedSuccessfullyTotal: i.processed.Load(),
		UserExceptionsTotal:        i.userExceptions.Load(),
		SystemExceptionsTotal:      i.sysExceptions.Load(),
		AvgProcessLatency:          avgMillis(i),
		LastInvocation:             i.lastInvocation.Load(),
	}
}

func avgMillis(i *instance) float64 {
	calls := i.processed.Load() + i.userExceptions.Load() + i.sysExceptions.Load()
	if calls == 0 {
		return 0
	}
	return float64(i.latencyNanos.Load()) / float64(calls) / 1e6
}

// Stats reports the totals of every instance (instance < 0) or one.
func (m *Manager) Stats(ctx context.Context, fqfn string, instance int) (FunctionStats, error) {
	_, insts, err := m.instancesOf(ctx, fqfn)
	if err != nil {
		return FunctionStats{}, err
	}
	remote, err := m.remoteOf(ctx, fqfn, insts)
	if err != nil {
		return FunctionStats{}, err
	}
	all := make([]InstanceStats, 0, len(insts))
	for id, i := range insts {
		s := InstanceStats{InstanceID: id, Metrics: InstanceData{UserMetrics: map[string]string{}}}
		if i != nil {
			s.Metrics = instanceStats(i)
		} else if rep, ok := remote[id]; ok {
			s.Metrics = rep.Stats
		}
		all = append(all, s)
	}
	sel, err := pick(all, instance, fqfn)
	if err != nil {
		return FunctionStats{}, err
	}
	st := FunctionStats{Instances: sel}
	var lat float64
	for _, s := range sel {
		d := s.Metrics
		st.ReceivedTotal += d.ReceivedTotal
		st.ProcessedSuccessfullyTotal += d.ProcessedSuccessfullyTotal
		st.UserExceptionsTotal += d.UserExceptionsTotal
		st.SystemExceptionsTotal += d.SystemExceptionsTotal
		st.LastInvocation = max(st.LastInvocation, d.LastInvocation)
		lat += d.AvgProcessLatency
	}
	if len(sel) > 0 {
		st.AvgProcessLatency = lat / float64(len(sel))
	}
	return st, nil
}
