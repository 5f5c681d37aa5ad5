package admin

import (
	"github.com/messagebus/messagebus/internal/geo"
	"time"

	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

func (s *Server) statsRoutes(m *http.ServeMux, d string) {
	topic := "/admin/v2/" + d + "/{tenant}/{ns}/{topic}"
	m.HandleFunc("GET "+topic+"/stats", s.single(d, s.topicStats))
	m.HandleFunc("GET "+topic+"/partitioned-stats", s.topic(d, s.partitionedStats))
	m.HandleFunc("GET "+topic+"/internalStats", s.single(d, s.internalStats))
	m.HandleFunc("GET "+topic+"/partitioned-internalStats", s.topic(d, s.partitionedInternalStats))
}

// The JSON shapes below are Pulsar's TopicStats, SubscriptionStats,
// ConsumerStats, PublisherStats and PersistentTopicInternalStats, with the
// fields MessageBus has values for and the others at their neutral value.

type topicStatsJSON struct {
	MsgRateIn                          float64                     `json:"msgRateIn"`
	MsgThroughputIn                    float64                     `json:"msgThroughputIn"`
	MsgRateOut                         float64                     `json:"msgRateOut"`
	MsgThroughputOut                   float64                     `json:"msgThroughputOut"`
	BytesInCounter                     int64                       `json:"bytesInCounter"`
	MsgInCounter                       int64                       `json:"msgInCounter"`
	BytesOutCounter                    int64                       `json:"bytesOutCounter"`
	MsgOutCounter                      int64                       `json:"msgOutCounter"`
	AverageMsgSize                     float64                     `json:"averageMsgSize"`
	MsgChunkPublished                  bool                        `json:"msgChunkPublished"`
	StorageSize                        int64                       `json:"storageSize"`
	BacklogSize                        int64                       `json:"backlogSize"`
	OffloadedStorageSize               int64                       `json:"offloadedStorageSize"`
	Publishers                         []publisherJSON             `json:"publishers"`
	WaitingPublishers                  int                         `json:"waitingPublishers"`
	Subscriptions                      map[string]subscriptionJSON `json:"subscriptions"`
	Replication                        map[string]geo.Stats        `json:"replication"`
	DeduplicationStatus                string                      `json:"deduplicationStatus"`
	NonContiguousDeletedMessagesRanges int                         `json:"nonContiguousDeletedMessagesRanges"`
	Compaction                         compactionStatsJSON         `json:"compaction"`
	TopicCreationTimeStamp             int64                       `json:"topicCreationTimeStamp"`
	LastPublishTimeStamp               int64                       `json:"lastPublishTimeStamp"`
}

// compactionStatsJSON is Pulsar's CompactionStats of topic stats.
type compactionStatsJSON struct {
	LastCompactionRemovedEventCount   int64 `json:"lastCompactionRemovedEventCount"`
	LastCompactionSucceedTimestamp    int64 `json:"lastCompactionSucceedTimestamp"`
	LastCompactionFailedTimestamp     int64 `json:"lastCompactionFailedTimestamp"`
	LastCompactionDurationTimeInMills int64 `json:"lastCompactionDurationTimeInMills"`
}

type publisherJSON struct {
	AccessMode              string            `json:"accessMode"`
	MsgRateIn               float64           `json:"msgRateIn"`
	MsgThroughputIn         float64           `json:"msgThroughputIn"`
	AverageMsgSize          float64           `json:"averageMsgSize"`
	ChunkedMessageRate      float64           `json:"chunkedMessageRate"`
	ProducerID              uint64            `json:"producerId"`
	SupportsPartialProducer bool              `json:"supportsPartialProducer"`
	ProducerName            string            `json:"producerName"`
	Address                 string            `json:"address"`
	ConnectedSince          string            `json:"connectedSince"`
	ClientVersion           string            `json:"clientVersion"`
	Metadata                map[string]string `json:"metadata"`
}

type subscriptionJSON struct {
	MsgRateOut                         float64           `json:"msgRateOut"`
	MsgThroughputOut                   float64           `json:"msgThroughputOut"`
	BytesOutCounter                    int64             `json:"bytesOutCounter"`
	MsgOutCounter                      int64             `json:"msgOutCounter"`
	MsgRateRedeliver                   float64           `json:"msgRateRedeliver"`
	MessageAckRate                     float64           `json:"messageAckRate"`
	ChunkedMessageRate                 float64           `json:"chunkedMessageRate"`
	MsgBacklog                         int64             `json:"msgBacklog"`
	BacklogSize                        int64             `json:"backlogSize"`
	MsgBacklogNoDelayed                int64             `json:"msgBacklogNoDelayed"`
	BlockedSubscriptionOnUnackedMsgs   bool              `json:"blockedSubscriptionOnUnackedMsgs"`
	MsgDelayed                         int64             `json:"msgDelayed"`
	UnackedMessages                    int64             `json:"unackedMessages"`
	Type                               string            `json:"type"`
	ActiveConsumerName                 string            `json:"activeConsumerName,omitempty"`
	MsgRateExpired                     float64           `json:"msgRateExpired"`
	TotalMsgExpired                    int64             `json:"totalMsgExpired"`
	Consumers                          []consumerJSON    `json:"consumers"`
	IsDurable                          bool              `json:"isDurable"`
	IsReplicated                       bool              `json:"isReplicated"`
	AllowOutOfOrderDelivery            bool              `json:"allowOutOfOrderDelivery"`
	ConsumersAfterMarkDeletePosition   map[string]string `json:"consumersAfterMarkDeletePosition"`
	NonContiguousDeletedMessagesRanges int               `json:"nonContiguousDeletedMessagesRanges"`
	SubscriptionProperties             map[string]string `json:"subscriptionProperties"`
}

type consumerJSON struct {
	MsgRateOut                   float64           `json:"msgRateOut"`
	MsgThroughputOut             float64           `json:"msgThroughputOut"`
	BytesOutCounter              int64             `json:"bytesOutCounter"`
	MsgOutCounter                int64             `json:"msgOutCounter"`
	MsgRateRedeliver             float64           `json:"msgRateRedeliver"`
	MessageAckRate               float64           `json:"messageAckRate"`
	ChunkedMessageRate           float64           `json:"chunkedMessageRate"`
	ConsumerName                 string            `json:"consumerName"`
	AvailablePermits             int               `json:"availablePermits"`
	UnackedMessages              int               `json:"unackedMessages"`
	AvgMessagesPerEntry          int               `json:"avgMessagesPerEntry"`
	BlockedConsumerOnUnackedMsgs bool              `json:"blockedConsumerOnUnackedMsgs"`
	PriorityLevel                int32             `json:"priorityLevel"`
	Address                      string            `json:"address"`
	ConnectedSince               string            `json:"connectedSince"`
	ClientVersion                string            `json:"clientVersion"`
	Metadata                     map[string]string `json:"metadata"`
	LastConsumedFlowTimestamp    int64             `json:"lastConsumedFlowTimestamp"`
}

// statsTime formats a time as Pulsar's stats do (ISO 8601 with offset).
func statsTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func topicStatsView(st broker.TopicStats) topicStatsJSON {
	v := topicStatsJSON{
		MsgRateIn:            st.MsgRateIn,
		MsgThroughputIn:      st.ThroughputIn,
		MsgRateOut:           st.MsgRateOut,
		MsgThroughputOut:     st.ThroughputOut,
		BytesInCounter:       st.BytesIn,
		MsgInCounter:         st.MsgIn,
		BytesOutCounter:      st.BytesOut,
		MsgOutCounter:        st.MsgOut,
		StorageSize:          st.StorageSize,
		OffloadedStorageSize: st.OffloadedSize,
		Publishers:           []publisherJSON{},
		Subscriptions:        map[string]subscriptionJSON{},
		Replication:          map[string]geo.Stats{},
		DeduplicationStatus:  "Disabled",
		LastPublishTimeStamp: st.LastPublish,
		Compaction: compactionStatsJSON{
			LastCompactionRemovedEventCount:   st.Compaction.LastRemovedEventCount,
			LastCompactionSucceedTimestamp:    st.Compaction.LastSucceedTimestamp,
			LastCompactionFailedTimestamp:     st.Compaction.LastFailedTimestamp,
			LastCompactionDurationTimeInMills: st.Compaction.LastDurationMillis,
		},
	}
	if st.MsgRateIn > 0 {
		v.AverageMsgSize = st.ThroughputIn / st.MsgRateIn
	}
	if !st.LoadedAt.IsZero() {
		v.TopicCreationTimeStamp = st.LoadedAt.UnixMilli()
	}
	if st.Deduplication {
		v.DeduplicationStatus = "Enabled"
	}
	for remote, rs := range st.Replication {
		v.Replication[remote] = rs
	}
	var avgEntry int64
	if st.Entries > 0 {
		avgEntry = st.StorageSize / st.Entries
	}
	for _, p := range st.Publishers {
		pv := publisherJSON{AccessMode: p.AccessMode, MsgRateIn: p.MsgRateIn, MsgThroughputIn: p.ThroughputIn,
			ProducerID: p.ID, ProducerName: p.Name, Address: p.Address, Metadata: nonNilMap(p.Metadata),
			ClientVersion: p.ClientVersion, ConnectedSince: statsTime(p.ConnectedSince)}
		if p.MsgRateIn > 0 {
			pv.AverageMsgSize = p.ThroughputIn / p.MsgRateIn
		}
		v.Publishers = append(v.Publishers, pv)
	}
	for name, ss := range st.Subscriptions {
		sv := subscriptionJSON{
			MsgRateOut:                         ss.MsgRateOut,
			MsgThroughputOut:                   ss.ThroughputOut,
			BytesOutCounter:                    ss.BytesOut,
			MsgOutCounter:                      ss.MsgOut,
			MsgBacklog:                         ss.Backlog,
			BacklogSize:                        ss.Backlog * avgEntry,
			MsgBacklogNoDelayed:                max(ss.Backlog-ss.Delayed, 0),
			MsgDelayed:                         ss.Delayed,
			UnackedMessages:                    ss.Unacked,
			Type:                               ss.Type,
			ActiveConsumerName:                 ss.ActiveConsumer,
			Consumers:                          []consumerJSON{},
			IsDurable:                          ss.Durable,
			ConsumersAfterMarkDeletePosition:   map[string]string{},
			NonContiguousDeletedMessagesRanges: ss.AckedRanges,
			SubscriptionProperties:             ss.Properties,
			BlockedSubscriptionOnUnackedMsgs:   ss.BlockedOnUnacked,
		}
		if sv.SubscriptionProperties == nil {
			sv.SubscriptionProperties = map[string]string{}
		}
		for _, c := range ss.Consumers {
			sv.Consumers = append(sv.Consumers, consumerJSON{
				MsgRateOut: c.MsgRateOut, MsgThroughputOut: c.ThroughputOut, BytesOutCounter: c.BytesOut,
				MsgOutCounter: c.MsgOut, ConsumerName: c.Name, AvailablePermits: c.Permits,
				UnackedMessages: c.Unacked, PriorityLevel: c.Priority, Address: c.Address, Metadata: nonNilMap(c.Metadata),
				ClientVersion: c.ClientVersion, ConnectedSince: statsTime(c.ConnectedSince),
				BlockedConsumerOnUnackedMsgs: c.BlockedOnUnacked, LastConsumedFlowTimestamp: c.LastFlow,
			})
		}
		v.Subscriptions[name] = sv
		v.BacklogSize = max(v.BacklogSize, sv.BacklogSize)
		v.NonContiguousDeletedMessagesRanges += ss.AckedRanges
	}
	return v
}

func (s *Server) topicStats(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	st, err := b.TopicStats(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	v := topicStatsView(st)
	excludeClients(r, &v)
	writeJSON(w, http.StatusOK, v)
}

// excludeClients drops the publishers (?excludePublishers=true) and the
// subscriptions' consumers (?excludeConsumers=true), as Pulsar's
// GetStatsOptions.
func excludeClients(r *http.Request, v *topicStatsJSON) {
	q := r.URL.Query()
	if q.Get("excludePublishers") == "true" {
		v.Publishers = []publisherJSON{}
	}
	if q.Get("excludeConsumers") == "true" {
		for name, sv := range v.Subscriptions {
			sv.Consumers = []consumerJSON{}
			v.Subscriptions[name] = sv
		}
	}
}

// partitionedStatsJSON is Pulsar's PartitionedTopicStats: the sum over the
// partitions, the metadata, and with ?perPartition (the default) each partition.
type partitionedStatsJSON struct {
	topicStatsJSON
	Metadata   meta.PartitionedTopicMetadata `json:"metadata"`
	Partitions map[string]topicStatsJSON     `json:"partitions"`
}

func (s *Server) partitionedStats(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	perPartition := true
	if r.URL.Query().Get("perPartition") != "" {
		if perPartition, ok = boolParam(w, r, "perPartition"); !ok {
			return
		}
	}
	n, err := s.meta.PartitionedTopic(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusNotFound, "partitioned topic "+t.String()+" does not exist")
		return
	}
	out := partitionedStatsJSON{Metadata: meta.PartitionedTopicMetadata{Partitions: n}, Partitions: map[string]topicStatsJSON{}}
	sum := topicStatsView(broker.TopicStats{})
	for i := range n {
		p := t.Partition(i)
		var pv topicStatsJSON
		if remote, err := s.remotePartition(r, p, "stats", &pv); remote { // cluster_fanout.go
			if err != nil && !errors.Is(err, errRemoteNotFound) {
				s.fail(w, err)
				return
			}
			if err != nil {
				pv = topicStatsView(broker.TopicStats{})
			}
		} else {
			st, err := b.TopicStats(r.Context(), p)
			if err != nil && !errors.Is(err, broker.ErrTopicNotFound) {
				s.fail(w, err)
				return
			}
			pv = topicStatsView(st)
		}
		excludeClients(r, &pv)
		addStats(&sum, pv)
		if perPartition {
			out.Partitions[p.String()] = pv
		}
	}
	if sum.MsgRateIn > 0 {
		sum.AverageMsgSize = sum.MsgThroughputIn / sum.MsgRateIn
	}
	out.topicStatsJSON = sum
	writeJSON(w, http.StatusOK, out)
}

// addStats adds a partition's stats to the sum; subscriptions of the same
// name are merged.
func addStats(sum *topicStatsJSON, p topicStatsJSON) {
	sum.MsgRateIn += p.MsgRateIn
	sum.MsgThroughputIn += p.MsgThroughputIn
	sum.MsgRateOut += p.MsgRateOut
	sum.MsgThroughputOut += p.MsgThroughputOut
	sum.BytesInCounter += p.BytesInCounter
	sum.MsgInCounter += p.MsgInCounter
	sum.BytesOutCounter += p.BytesOutCounter
	sum.MsgOutCounter += p.MsgOutCounter
	sum.StorageSize += p.StorageSize
	sum.OffloadedStorageSize += p.OffloadedStorageSize
	sum.BacklogSize += p.BacklogSize
	sum.NonContiguousDeletedMessagesRanges += p.NonContiguousDeletedMessagesRanges
	if c := p.TopicCreationTimeStamp; c > 0 && (sum.TopicCreationTimeStamp == 0 || c < sum.TopicCreationTimeStamp) {
		sum.TopicCreationTimeStamp = c
	}
	sum.LastPublishTimeStamp = max(sum.LastPublishTimeStamp, p.LastPublishTimeStamp)
	sum.Publishers = append(sum.Publishers, p.Publishers...)
	if p.DeduplicationStatus == "Enabled" {
		sum.DeduplicationStatus = p.DeduplicationStatus
	}
	for remote, pr := range p.Replication {
		sr, ok := sum.Replication[remote]
		if !ok {
			sum.Replication[remote] = pr
			continue
		}
		// A partitioned topic's link is connected when every partition's is.
		sr.MsgRateOut += pr.MsgRateOut
		sr.MsgThroughputOut += pr.MsgThroughputOut
		sr.MsgOutCounter += pr.MsgOutCounter
		sr.BytesOutCounter += pr.BytesOutCounter
		sr.ReplicationBacklog += pr.ReplicationBacklog
		sr.Connected = sr.Connected && pr.Connected
		sr.ReplicationDelayInSeconds = max(sr.ReplicationDelayInSeconds, pr.ReplicationDelayInSeconds)
		if pr.LastErrorTimestamp > sr.LastErrorTimestamp {
			sr.LastError, sr.LastErrorTimestamp = pr.LastError, pr.LastErrorTimestamp
		}
		sum.Replication[remote] = sr
	}
	for name, ps := range p.Subscriptions {
		ss, ok := sum.Subscriptions[name]
		if !ok {
			ps.Consumers = append([]consumerJSON{}, ps.Consumers...)
			sum.Subscriptions[name] = ps
			continue
		}
		ss.MsgRateOut += ps.MsgRateOut
		ss.MsgThroughputOut += ps.MsgThroughputOut
		ss.BytesOutCounter += ps.BytesOutCounter
		ss.MsgOutCounter += ps.MsgOutCounter
		ss.MsgBacklog += ps.MsgBacklog
		ss.BacklogSize += ps.BacklogSize
		ss.MsgBacklogNoDelayed += ps.MsgBacklogNoDelayed
		ss.MsgDelayed += ps.MsgDelayed
		ss.UnackedMessages += ps.UnackedMessages
		ss.NonContiguousDeletedMessagesRanges += ps.NonContiguousDeletedMessagesRanges
		ss.Consumers = append(ss.Consumers, ps.Consumers...)
		sum.Subscriptions[name] = ss
	}
}

type internalStatsJSON struct {
	EntriesAddedCounter    int64                 `json:"entriesAddedCounter"`
	NumberOfEntries        int64                 `json:"numberOfEntries"`
	TotalSize              int64                 `json:"totalSize"`
	CurrentLedgerEntries   int64                 `json:"currentLedgerEntries"`
	CurrentLedgerSize      int64                 `json:"currentLedgerSize"`
	WaitingCursorsCount    int                   `json:"waitingCursorsCount"`
	PendingAddEntriesCount int                   `json:"pendingAddEntriesCount"`
	LastConfirmedEntry     string                `json:"lastConfirmedEntry"`
	State                  string                `json:"state"`
	Ledgers                []ledgerJSON          `json:"ledgers"`
	Cursors                map[string]cursorJSON `json:"cursors"`
	SchemaLedgers          []ledgerJSON          `json:"schemaLedgers"`
	CompactedLedger        ledgerJSON            `json:"compactedLedger"`
	// LostEntries is MessageBus's own: entries lost to damaged storage.
	LostEntries int64 `json:"lostEntries"`
	// OffloadedStorageSize (as in topic stats): bytes of entries in the
	// object store.
	OffloadedStorageSize int64 `json:"offloadedStorageSize"`
}

type ledgerJSON struct {
	LedgerID        int64 `json:"ledgerId"`
	Entries         int64 `json:"entries"`
	Size            int64 `json:"size"`
	Offloaded       bool  `json:"offloaded"`
	UnderReplicated bool  `json:"underReplicated"`
}

type cursorJSON struct {
	MarkDeletePosition                       string           `json:"markDeletePosition"`
	ReadPosition                             string           `json:"readPosition"`
	WaitingReadOp                            bool             `json:"waitingReadOp"`
	PendingReadOps                           int              `json:"pendingReadOps"`
	MessagesConsumedCounter                  int64            `json:"messagesConsumedCounter"`
	CursorLedger                             int64            `json:"cursorLedger"`
	CursorLedgerLastEntry                    int64            `json:"cursorLedgerLastEntry"`
	IndividuallyDeletedMessages              string           `json:"individuallyDeletedMessages"`
	State                                    string           `json:"state"`
	Active                                   bool             `json:"active"`
	Durable                                  bool             `json:"durable"`
	NumberOfEntriesSinceFirstNotAckedMessage int64            `json:"numberOfEntriesSinceFirstNotAckedMessage"`
	TotalNonContiguousDeletedMessagesRange   int              `json:"totalNonContiguousDeletedMessagesRange"`
	Properties                               map[string]int64 `json:"properties"`
}

func position(ledgerID, entryID int64) string { return fmt.Sprintf("%d:%d", ledgerID, entryID) }

func (s *Server) internalStats(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	st, err := b.TopicInternalStats(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, internalStatsView(st))
}

// partitionedInternalStats answers Pulsar's PartitionedTopicInternalStats:
// the metadata and each partition's internal stats by partition name.
func (s *Server) partitionedInternalStats(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	n, err := s.meta.PartitionedTopic(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusNotFound, "partitioned topic "+t.String()+" does not exist")
		return
	}
	out := struct {
		Metadata   meta.PartitionedTopicMetadata `json:"metadata"`
		Partitions map[string]internalStatsJSON  `json:"partitions"`
	}{meta.PartitionedTopicMetadata{Partitions: n}, map[string]internalStatsJSON{}}
	for i := range n {
		p := t.Partition(i)
		var pv internalStatsJSON
		if remote, err := s.remotePartition(r, p, "internalStats", &pv); remote { // cluster_fanout.go
			if errors.Is(err, errRemoteNotFound) {
				err = fmt.Errorf("%w: %s", broker.ErrTopicNotFound, p)
			}
			if err != nil {
				s.fail(w, err)
				return
			}
			out.Partitions[p.String()] = pv
			continue
		}
		st, err := b.TopicInternalStats(r.Context(), p)
		if err != nil {
			s.fail(w, err)
			return
		}
		out.Partitions[p.String()] = internalStatsView(st)
	}
	writeJSON(w, http.StatusOK, out)
}

// ledgersView lists the topic's ledger as Pulsar's internal stats do, one
// element per tier: a topic has one ledger (message ids keep its id), so
// its entries in the object store are shown as a first element with
// "offloaded": true, and the entries only on local disk as a second (the
// only one when nothing is offloaded).
func ledgersView(st broker.InternalStats) []ledgerJSON {
	if st.OffloadedEntries == 0 {
		return []ledgerJSON{{LedgerID: st.LedgerID, Entries: st.Entries, Size: st.Size}}
	}
	return []ledgerJSON{
		{LedgerID: st.LedgerID, Entries: st.OffloadedEntries, Size: st.OffloadedSize, Offloaded: true},
		{LedgerID: st.LedgerID, Entries: max(0, st.Entries-st.OffloadedEntries), Size: max(0, st.Size-st.OffloadedSize)},
	}
}

func internalStatsView(st broker.InternalStats) internalStatsJSON {
	v := internalStatsJSON{
		EntriesAddedCounter:  st.LastEntryID + 1,
		NumberOfEntries:      st.Entries,
		TotalSize:            st.Size,
		CurrentLedgerEntries: st.Entries,
		CurrentLedgerSize:    st.Size,
		LastConfirmedEntry:   position(st.LedgerID, st.LastEntryID),
		State:                "LedgerOpened",
		Ledgers:              ledgersView(st),
		Cursors:              map[string]cursorJSON{},
		SchemaLedgers:        []ledgerJSON{},
		CompactedLedger:      ledgerJSON{LedgerID: -1, Entries: -1, Size: -1},
		LostEntries:          st.LostEntries,
		OffloadedStorageSize: st.OffloadedSize,
	}
	if st.Compaction.LedgerID >= 0 && st.Compaction.Ledger != "" {
		v.CompactedLedger = ledgerJSON{LedgerID: st.Compaction.LedgerID, Entries: st.Compaction.Entries, Size: st.Compaction.Size,
			Offloaded: st.Compaction.Offloaded}
	}
	if st.Terminated {
		v.State = "Terminated"
	}
	for name, c := range st.Cursors {
		ranges := make([]string, len(c.AckedRanges))
		for i, rg := range c.AckedRanges {
			// Guava's range notation, as Pulsar prints it: (lower-exclusive..upper-inclusive].
			ranges[i] = "(" + position(st.LedgerID, rg[0]-1) + ".." + position(st.LedgerID, rg[1]) + "]"
		}
		firstUnacked := c.MarkDelete + 1
		v.Cursors[name] = cursorJSON{
			MarkDeletePosition:                       position(st.LedgerID, c.MarkDelete),
			ReadPosition:                             position(st.LedgerID, c.ReadPos),
			MessagesConsumedCounter:                  c.MsgOut,
			CursorLedger:                             -1,
			CursorLedgerLastEntry:                    -1,
			IndividuallyDeletedMessages:              "[" + strings.Join(ranges, ", ") + "]",
			State:                                    "Open",
			Active:                                   true,
			Durable:                                  c.Durable,
			NumberOfEntriesSinceFirstNotAckedMessage: max(st.LastEntryID-firstUnacked+1, 0),
			TotalNonContiguousDeletedMessagesRange:   c.RangeCount,
			Properties:                               map[string]int64{},
		}
	}
	return v
}
