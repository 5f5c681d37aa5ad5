package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/messagebus/messagebus/internal/broker"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
)

// maxPartitions bounds the partitions of a topic: every partition is listed
// and acted on one by one.
const maxPartitions = 10000

// topicHandler handles a request about the topic named by the path.
type topicHandler func(w http.ResponseWriter, r *http.Request, t naming.Topic)

func (s *Server) topicRoutes(m *http.ServeMux, d string) {
	ns := "/admin/v2/" + d + "/{tenant}/{ns}"
	topic := ns + "/{topic}"
	m.HandleFunc("GET "+ns, func(w http.ResponseWriter, r *http.Request) { s.listDomainTopics(w, r, d) })
	m.HandleFunc("GET "+ns+"/partitioned", func(w http.ResponseWriter, r *http.Request) { s.listPartitioned(w, r, d) })
	m.HandleFunc("PUT "+topic, s.topic(d, s.createTopic))
	m.HandleFunc("DELETE "+topic, s.topic(d, s.deleteTopic))
	m.HandleFunc("PUT "+topic+"/partitions", s.topic(d, func(w http.ResponseWriter, r *http.Request, t naming.Topic) { s.putPartitions(w, r, t, true) }))
	m.HandleFunc("POST "+topic+"/partitions", s.topic(d, func(w http.ResponseWriter, r *http.Request, t naming.Topic) { s.putPartitions(w, r, t, false) }))
	m.HandleFunc("GET "+topic+"/partitions", s.topic(d, s.getPartitions))
	m.HandleFunc("DELETE "+topic+"/partitions", s.topic(d, s.deletePartitioned))
	m.HandleFunc("GET /lookup/v2/topic/"+d+"/{tenant}/{ns}/{topic}", s.topic(d, s.lookup))
	m.HandleFunc("PUT "+topic+"/unload", s.topic(d, s.unload))
	m.HandleFunc("POST "+topic+"/terminate", s.single(d, s.terminate))
	m.HandleFunc("POST "+topic+"/terminate/partitions", s.topic(d, s.terminatePartitions))
	m.HandleFunc("GET "+topic+"/lastMessageId", s.single(d, s.lastMessageID))
	m.HandleFunc("GET "+topic+"/messageid/{timestamp}", s.single(d, s.messageIDByTimestamp))
	m.HandleFunc("GET "+topic+"/ledger/{ledger}/entry/{entry}", s.single(d, s.messageByID))
	m.HandleFunc("GET "+topic+"/permissions", s.topic(d, s.getTopicPermissions))
	m.HandleFunc("POST "+topic+"/permissions/{role}", s.topic(d, s.grantTopicPermission))
	m.HandleFunc("DELETE "+topic+"/permissions/{role}", s.topic(d, s.revokeTopicPermission))
}

// topic parses the path's topic name (412 when invalid) before calling h.
func (s *Server) topic(domain string, h topicHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := naming.ParseTopic(domain + "://" + r.PathValue("tenant") + "/" + r.PathValue("ns") + "/" + r.PathValue("topic"))
		if err != nil {
			writeError(w, http.StatusPreconditionFailed, err.Error())
			return
		}
		h(w, r, t)
	}
}

// single is topic for operations on one stored topic: the name of a
// partitioned topic is refused (405), as Pulsar does; use a partition.
func (s *Server) single(domain string, h topicHandler) http.HandlerFunc {
	return s.topic(domain, func(w http.ResponseWriter, r *http.Request, t naming.Topic) {
		n, err := s.meta.PartitionedTopic(r.Context(), t)
		if err != nil {
			s.fail(w, err)
			return
		}
		if n > 0 {
			writeError(w, http.StatusMethodNotAllowed, "not allowed on partitioned topic "+t.String()+"; act on its partitions")
			return
		}
		h(w, r, t)
	})
}

// partitions returns the topics an operation on t acts on: the partitions
// of a partitioned topic, else t itself.
func (s *Server) partitions(ctx context.Context, t naming.Topic) ([]naming.Topic, error) {
	n, err := s.meta.PartitionedTopic(ctx, t)
	if err != nil || n == 0 {
		return []naming.Topic{t}, err
	}
	out := make([]naming.Topic, n)
	for i := range out {
		out[i] = t.Partition(i)
	}
	return out, nil
}

// checkNamespace answers 404 when the topic's namespace does not exist.
func (s *Server) checkNamespace(ctx context.Context, t naming.Topic) error {
	ok, err := s.meta.NamespaceExists(ctx, t.Namespace)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "namespace %s does not exist", t.Namespace)
	}
	return nil
}

func (s *Server) listDomainTopics(w http.ResponseWriter, r *http.Request, domain string) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	s.listTopics(w, r, ns, domain)
}

func (s *Server) listPartitioned(w http.ResponseWriter, r *http.Request, domain string) {
	ns, ok := namespaceFromPath(w, r)
	if !ok {
		return
	}
	if exists, err := s.meta.NamespaceExists(r.Context(), ns); err != nil {
		s.fail(w, err)
		return
	} else if !exists {
		writeError(w, http.StatusNotFound, "namespace "+ns.String()+" does not exist")
		return
	}
	topics, err := s.meta.PartitionedTopics(r.Context(), ns, domain)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(topics))
}

// createTopic creates a non-partitioned topic. The optional body holds
// the topic's properties (kept with its policies, see policies_limits.go).
func (s *Server) createTopic(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	var props map[string]string
	if _, ok := readBody(w, r, maxBodyBytes, &props); !ok {
		return
	}
	ctx := r.Context()
	if err := s.checkNamespace(ctx, t); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.checkPartitionName(ctx, t); err != nil {
		s.fail(w, err)
		return
	}
	if n, err := s.meta.PartitionedTopic(ctx, t); err != nil {
		s.fail(w, err)
		return
	} else if n > 0 {
		writeError(w, http.StatusConflict, "topic "+t.String()+" already exists as a partitioned topic")
		return
	}
	if err := b.CheckTopicQuota(ctx, t, 0); err != nil {
		s.fail(w, err)
		return
	}
	if err := b.CreateTopic(ctx, t); err != nil {
		s.fail(w, err)
		return
	}
	if !s.keepProperties(w, r, t, props) {
		return
	}
	noContent(w)
}

// keepProperties stores the properties given at a topic's creation.
func (s *Server) keepProperties(w http.ResponseWriter, r *http.Request, t naming.Topic, props map[string]string) bool {
	if len(props) == 0 {
		return true
	}
	err := s.meta.UpdateTopicPolicies(r.Context(), t, func(tp *meta.TopicPolicies) error {
		tp.Properties = mergeProperties(tp.Properties, props)
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return false
	}
	return true
}

// checkPartitionName applies Pulsar's rule for names ending in
// -partition-N: they may only name an existing partition of a partitioned topic.
func (s *Server) checkPartitionName(ctx context.Context, t naming.Topic) error {
	i := t.PartitionIndex()
	if i < 0 {
		return nil
	}
	n, err := s.meta.PartitionedTopic(ctx, t.Partitioned())
	if err != nil {
		return err
	}
	if i >= n {
		return errorf(http.StatusPreconditionFailed, "cannot create %s: the name of a partition needs a partitioned topic %s with more than %d partitions",
			t, t.Partitioned(), i)
	}
	return nil
}

// deleteTopic deletes a non-partitioned topic or one partition (?force=true
// closes its producers and consumers first).
func (s *Server) deleteTopic(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	if n, err := s.meta.PartitionedTopic(r.Context(), t); err != nil {
		s.fail(w, err)
		return
	} else if n > 0 {
		writeError(w, http.StatusConflict, t.String()+" is a partitioned topic: delete it with DELETE .../partitions")
		return
	}
	if err := b.DeleteTopic(r.Context(), t, force); err != nil {
		s.fail(w, err)
		return
	}
	// A partition's policies and schema are its partitioned topic's: they stay.
	if t.PartitionIndex() < 0 {
		if err := s.meta.DeleteTopicPolicies(r.Context(), t); err != nil {
			s.fail(w, err)
			return
		}
		if err := s.schemas.DeleteTopic(r.Context(), t); err != nil {
			s.fail(w, err)
			return
		}
	}
	noContent(w)
}

// partitionCount decodes a partitions body: a number, or Pulsar's
// partitioned-topic metadata object {"partitions": n, "properties": {...}}.
func partitionCount(w http.ResponseWriter, r *http.Request) (int, map[string]string, bool) {
	var raw json.RawMessage
	if !requireBody(w, r, maxValueBytes, &raw, "the number of partitions") {
		return 0, nil, false
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil, true
	}
	var md struct {
		Partitions *int              `json:"partitions"`
		Properties map[string]string `json:"properties"`
	}
	if err := json.Unmarshal(raw, &md); err != nil || md.Partitions == nil {
		writeError(w, http.StatusBadRequest, "request body must be the number of partitions or {\"partitions\": n}")
		return 0, nil, false
	}
	return *md.Partitions, md.Properties, true
}

// putPartitions creates (PUT) or grows (POST) a partitioned topic.
func (s *Server) putPartitions(w http.ResponseWriter, r *http.Request, t naming.Topic, create bool) {
	n, props, ok := partitionCount(w, r)
	if !ok {
		return
	}
	switch {
	case n <= 0:
		writeError(w, http.StatusNotAcceptable, "number of partitions must be more than 0")
		return
	case n > maxPartitions:
		writeError(w, http.StatusPreconditionFailed, fmt.Sprintf("number of partitions must be at most %d", maxPartitions))
		return
	case t.PartitionIndex() >= 0:
		writeError(w, http.StatusPreconditionFailed, "a partition cannot itself be partitioned: "+t.String())
		return
	}
	ctx := r.Context()
	if err := s.checkNamespace(ctx, t); err != nil {
		s.fail(w, err)
		return
	}
	cur, err := s.meta.PartitionedTopic(ctx, t)
	if err != nil {
		s.fail(w, err)
		return
	}
	switch {
	case create && cur > 0:
		writeError(w, http.StatusConflict, "partitioned topic "+t.String()+" already exists")
		return
	case !create && cur == 0:
		writeError(w, http.StatusNotFound, "partitioned topic "+t.String()+" does not exist")
		return
	case !create && n <= cur:
		writeError(w, http.StatusUnprocessableEntity, "the number of partitions can only grow (now "+strconv.Itoa(cur)+")")
		return
	}
	if create && s.cfg.Broker != nil {
		if exists, err := s.cfg.Broker.TopicExists(ctx, t); err != nil {
			s.fail(w, err)
			return
		} else if exists {
			writeError(w, http.StatusConflict, "topic "+t.String()+" already exists as a non-partitioned topic")
			return
		}
	}
	if s.cfg.Broker != nil {
		if err := s.cfg.Broker.CheckTopicQuota(ctx, t, n-cur); err != nil {
			s.fail(w, err)
			return
		}
	}
	if err := s.meta.PutPartitionedTopic(ctx, t, n, create); err != nil {
		s.metaError(w, err, "partitioned topic "+t.String())
		return
	}
	if create && !s.keepProperties(w, r, t, props) {
		return
	}
	noContent(w)
}

func (s *Server) getPartitions(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	n, err := s.meta.PartitionedTopic(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, meta.PartitionedTopicMetadata{Partitions: n})
}

// deletePartitioned deletes a partitioned topic with its partitions
// (?force=true closes their producers and consumers first).
func (s *Server) deletePartitioned(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	force, ok := boolParam(w, r, "force")
	if !ok {
		return
	}
	if err := s.removePartitionedAt(r, t, force); err != nil {
		s.fail(w, err)
		return
	}
	noContent(w)
}

// removePartitionedAt deletes partitioned topic t for admin call r: in
// cluster mode the partitions another broker serves are deleted at their
// owners (cluster_fanout.go).
func (s *Server) removePartitionedAt(r *http.Request, t naming.Topic, force bool) error {
	ctx := r.Context()
	n, err := s.meta.PartitionedTopic(ctx, t)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(http.StatusNotFound, "partitioned topic %s does not exist", t)
	}
	if b := s.cfg.Broker; b != nil {
		if !force {
			// Refuse before deleting anything rather than stop half-way.
			for i := range n {
				p := t.Partition(i)
				remote, remoteBusy, err := s.remotePartitionBusy(r, p)
				if err != nil {
					return err
				}
				if remote && remoteBusy || b.HasClients(p) {
					return fmt.Errorf("%w: %s", broker.ErrTopicBusy, p)
				}
			}
		}
		for i := range n {
			if err := s.deleteAtOwner(r, t.Partition(i), force); err != nil {
				return err
			}
		}
	}
	if err := s.meta.DeletePartitionedTopic(ctx, t); err != nil && !isNotFound(err) {
		return err
	}
	if err := s.schemas.DeleteTopic(ctx, t); err != nil {
		return err
	}
	return s.meta.DeleteTopicPolicies(ctx, t)
}

// lookup answers the HTTP lookup clients use with an http:// service URL.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, _ naming.Topic) {
	lookupAnswer(w, r, s.cfg.BrokerURL, s.cfg.BrokerURLTLS, s.cfg.WebURL, s.cfg.WebURLTLS, s.cfg.Listeners)
}

// listenerHeader names a listener in an HTTP lookup, as the listenerName
// query parameter does (which wins).
const listenerHeader = "X-Pulsar-ListenerName"

// lookupAnswer writes an HTTP lookup's LookupData. A lookup naming a
// listener gets that listener's broker URLs (the HTTP URLs stay), as
// Pulsar; one the broker does not advertise fails as Pulsar's does.
func lookupAnswer(w http.ResponseWriter, r *http.Request, pulsarURL, pulsarTLS, httpURL, httpsURL string, listeners map[string]broker.Listener) {
	name := r.URL.Query().Get("listenerName")
	if name == "" {
		name = r.Header.Get(listenerHeader)
	}
	if name != "" {
		l, ok := listeners[name]
		if !ok {
			writeError(w, http.StatusInternalServerError, "the broker do not have "+name+" listener")
			return
		}
		pulsarURL, pulsarTLS = l.PulsarURL, l.PulsarTLSURL
	}
	resp := map[string]string{"httpUrl": httpURL}
	if pulsarURL != "" {
		resp["brokerUrl"] = pulsarURL
	}
	if pulsarTLS != "" {
		resp["brokerUrlTls"] = pulsarTLS
	}
	if httpsURL != "" {
		resp["httpUrlTls"] = httpsURL
	}
	writeJSON(w, http.StatusOK, resp)
}

// unload closes a topic's producers and consumers (they reconnect) and reloads it on next use.
func (s *Server) unload(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	topics, err := s.partitions(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	for _, p := range topics {
		if remote, err := s.forwardPartition(r, t, p); remote { // cluster_fanout.go
			if err != nil {
				s.fail(w, err)
				return
			}
			continue
		}
		if err := b.UnloadTopic(p.String()); err != nil {
			s.internalError(w, fmt.Errorf("unload %s: %w", p, err))
			return
		}
	}
	noContent(w)
}

// messageIDJSON is a message id as Pulsar's admin API shows it.
type messageIDJSON struct {
	LedgerID       int64  `json:"ledgerId"`
	EntryID        int64  `json:"entryId"`
	PartitionIndex int    `json:"partitionIndex"`
	BatchIndex     *int32 `json:"batchIndex,omitempty"`
}

func messageIDView(id broker.MessageID) messageIDJSON {
	v := messageIDJSON{LedgerID: id.LedgerID, EntryID: id.EntryID, PartitionIndex: id.Partition}
	if id.BatchIndex >= 0 {
		v.BatchIndex = &id.BatchIndex
	}
	return v
}

// terminate seals the topic and returns the id of its last message.
func (s *Server) terminate(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	id, err := b.TerminateTopic(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, messageIDView(id))
}

// terminatePartitions terminates every partition of a partitioned topic and
// answers, as Pulsar does, the last message id of each by partition index.
func (s *Server) terminatePartitions(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	ctx := r.Context()
	if err := s.checkNamespace(ctx, t); err != nil {
		s.fail(w, err)
		return
	}
	n, err := s.meta.PartitionedTopic(ctx, t)
	if err != nil {
		s.fail(w, err)
		return
	}
	if n == 0 {
		if exists, err := b.TopicExists(ctx, t); err != nil {
			s.fail(w, err)
		} else if exists {
			writeError(w, http.StatusMethodNotAllowed, "termination of a non-partitioned topic is not allowed using partitioned-terminate, please use terminate commands")
		} else {
			writeError(w, http.StatusNotFound, "partitioned topic "+t.String()+" does not exist")
		}
		return
	}
	ids := make(map[string]messageIDJSON, n)
	for i := range n {
		var last messageIDJSON // at the partition's owner (cluster_fanout.go)
		if remote, err := s.callPartitionOwner(r, t.Partition(i), http.MethodPost, "terminate", false, &last); remote {
			if err != nil {
				s.fail(w, err)
				return
			}
			ids[strconv.Itoa(i)] = last
			continue
		}
		id, err := b.TerminateTopic(ctx, t.Partition(i))
		if err != nil {
			s.fail(w, err)
			return
		}
		ids[strconv.Itoa(i)] = messageIDView(id)
	}
	writeJSON(w, http.StatusOK, ids)
}

func (s *Server) lastMessageID(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	id, err := b.LastMessageID(r.Context(), t)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, messageIDView(id))
}

// messageIDByTimestamp finds the first message published at or after the
// path's timestamp (unix milliseconds).
func (s *Server) messageIDByTimestamp(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	ts, ok := intPathValue(w, r, "timestamp")
	if !ok {
		return
	}
	id, err := b.MessageIDByTimestamp(r.Context(), t, ts)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, messageIDView(id))
}

// messageByID returns one stored entry, as a peek does.
func (s *Server) messageByID(w http.ResponseWriter, r *http.Request, t naming.Topic) {
	b, ok := s.broker(w)
	if !ok {
		return
	}
	ledgerID, ok := intPathValue(w, r, "ledger")
	if !ok {
		return
	}
	entryID, ok := intPathValue(w, r, "entry")
	if !ok {
		return
	}
	m, err := b.ReadMessage(r.Context(), t, ledgerID, entryID)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.writeMessage(w, m)
}

// messageIDInput is a message id in a request body; Pulsar's
// ResetCursorData adds isExcluded.
type messageIDInput struct {
	LedgerID       *int64 `json:"ledgerId"`
	EntryID        *int64 `json:"entryId"`
	PartitionIndex *int   `json:"partitionIndex"`
	BatchIndex     *int32 `json:"batchIndex"`
	IsExcluded     bool   `json:"isExcluded"`
}

func (in messageIDInput) id() (broker.MessageID, error) {
	if in.LedgerID == nil || in.EntryID == nil {
		return broker.MessageID{}, errorf(http.StatusBadRequest, "a message id needs ledgerId and entryId")
	}
	id := broker.MessageID{LedgerID: *in.LedgerID, EntryID: *in.EntryID, Partition: -1, BatchIndex: -1}
	if in.PartitionIndex != nil {
		id.Partition = *in.PartitionIndex
	}
	return id, nil
}
