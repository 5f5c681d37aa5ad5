package connectors

import "github.com/messagebus/messagebus/internal/supervise"

// Pulsar's SourceStatus and SinkStatus shapes (pulsaradmin's utils types).

// ExceptionEntry is one recent error.
type ExceptionEntry = supervise.ExceptionEntry

// InstanceStatusData is one instance's status; the source fields or the
// sink fields are filled according to the kind.
type InstanceStatusData struct {
	Running                bool             `json:"running"`
	Error                  string           `json:"error"`
	NumRestarts            int64            `json:"numRestarts"`
	NumSystemExceptions    int64            `json:"numSystemExceptions"`
	LatestSystemExceptions []ExceptionEntry `json:"latestSystemExceptions"`
	LastReceivedTime       int64            `json:"lastReceivedTime"`
	WorkerID               string           `json:"workerId"`

	// Source.
	NumReceivedFromSource  *int64           `json:"numReceivedFromSource,omitempty"`
	NumSourceExceptions    *int64           `json:"numSourceExceptions,omitempty"`
	LatestSourceExceptions []ExceptionEntry `json:"latestSourceExceptions,omitempty"`
	NumWritten             *int64           `json:"numWritten,omitempty"`

	// Sink.
	NumReadFromPulsar    *int64           `json:"numReadFromPulsar,omitempty"`
	NumSinkExceptions    *int64           `json:"numSinkExceptions,omitempty"`
	LatestSinkExceptions []ExceptionEntry `json:"latestSinkExceptions,omitempty"`
	NumWrittenToSink     *int64           `json:"numWrittenToSink,omitempty"`
}

// InstanceStatus is one instance with its id.
type InstanceStatus struct {
	InstanceID int                `json:"instanceId"`
	Status     InstanceStatusData `json:"status"`
}

// Status answers .../status.
type Status struct {
	NumInstances int              `json:"numInstances"`
	NumRunning   int              `json:"numRunning"`
	Instances    []InstanceStatus `json:"instances"`
}

func (i *instance) status(kind Kind, worker string) InstanceStatusData {
	lastError := i.LastError()
	i.mu.Lock()
	defer i.mu.Unlock()
	received, written, extErrs := i.received.Load(), i.written.Load(), i.extErrors.Load()
	d := InstanceStatusData{
		Running:                i.Running.Load(),
		Error:                  lastError,
		NumRestarts:            i.Restarts.Load(),
		NumSystemExceptions:    i.sysErrors.Load(),
		LatestSystemExceptions: append([]ExceptionEntry{}, i.sysErrs...),
		LastReceivedTime:       i.lastReceived.Load(),
		WorkerID:               worker,
	}
	ext := append([]ExceptionEntry{}, i.extErrs...)
	if kind == KindSource {
		d.NumReceivedFromSource, d.NumWritten, d.NumSourceExceptions, d.LatestSourceExceptions = &received, &written, &extErrs, ext
	} else {
		d.NumReadFromPulsar, d.NumWrittenToSink, d.NumSinkExceptions, d.LatestSinkExceptions = &received, &written, &extErrs, ext
	}
	return d
}
