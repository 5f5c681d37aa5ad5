package geo

// Stats is one entry of a topic stats' "replication" map, Pulsar's
// ReplicatorStats with two additions: lastError and lastErrorTimestamp say
// why the replicator is not connected (or last was not).
type Stats struct {
	MsgRateIn                 float64 `json:"msgRateIn"`
	MsgThroughputIn           float64 `json:"msgThroughputIn"`
	MsgRateOut                float64 `json:"msgRateOut"`
	MsgThroughputOut          float64 `json:"msgThroughputOut"`
	MsgRateExpired            float64 `json:"msgRateExpired"`
	ReplicationBacklog        int64   `json:"replicationBacklog"`
	Connected                 bool    `json:"connected"`
	ReplicationDelayInSeconds int64   `json:"replicationDelayInSeconds"`
	InboundConnection         string  `json:"inboundConnection"`
	InboundConnectedSince     string  `json:"inboundConnectedSince"`
	OutboundConnection        string  `json:"outboundConnection"`
	OutboundConnectedSince    string  `json:"outboundConnectedSince"`
	MsgOutCounter             int64   `json:"msgOutCounter"`
	BytesOutCounter           int64   `json:"bytesOutCounter"`
	LastError                 string  `json:"lastError,omitempty"`
	LastErrorTimestamp        string  `json:"lastErrorTimestamp,omitempty"`
}

// SubscriptionPath is the remote admin path (after the topic's) that takes
// a replicated subscription's watermarks.
const SubscriptionPath = "replicatedPosition"

// SubscriptionUpdate is the body posted to SubscriptionPath.
type SubscriptionUpdate struct {
	// Positions are the watermarks by source cluster ("ledgerId:entryId").
	Positions map[string]string `json:"positions"`
}
