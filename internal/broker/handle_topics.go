package broker

import (
	"context"
	"sort"
	"strings"

	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Listing a namespace's topics, for pattern consumers.
//
//	GET_TOPICS_OF_NAMESPACE (32): namespace, mode (PERSISTENT,
//	  NON_PERSISTENT, ALL). Answered GET_TOPICS_OF_NAMESPACE_RESPONSE with
//	  every topic and partition, filtered=false (the client applies its
//	  pattern) and changed=true. Errors: InvalidTopicName,
//	  AuthorizationError, ServiceNotReady. Ignored: topics_pattern,
//	  topics_hash. WATCH_TOPIC_LIST (64) is not supported (ERROR
//	  NotAllowedError, conn.go), so clients poll.

// handleGetTopicsOfNamespace lists a namespace's topics for pattern
// consumers; the client filters by its regex itself (filtered=false).
func (c *conn) handleGetTopicsOfNamespace(ctx context.Context, cmd *pb.CommandGetTopicsOfNamespace) {
	ns, err := naming.ParseNamespace(cmd.GetNamespace())
	if err != nil {
		c.writeCommand(errorCommand(cmd.GetRequestId(), pb.ServerError_InvalidTopicName, err.Error()))
		return
	}
	if err := c.authorizeListTopics(ctx, ns); err != nil {
		err = requestError(ctx, err)
		c.countTimeout(ctx, "get_topics_of_namespace", err)
		c.writeCommand(errorCommand(cmd.GetRequestId(), serverError(err), err.Error()))
		return
	}
	var domains []string
	switch cmd.GetMode() {
	case pb.CommandGetTopicsOfNamespace_PERSISTENT:
		domains = []string{naming.Persistent}
	case pb.CommandGetTopicsOfNamespace_NON_PERSISTENT:
		domains = []string{naming.NonPersistent}
	default:
		domains = []string{naming.Persistent, naming.NonPersistent}
	}
	topics, err := c.b.NamespaceTopics(ctx, ns, domains...)
	if err != nil {
		err = requestError(ctx, c.b.metadataError("topics", err))
		c.countTimeout(ctx, "get_topics_of_namespace", err)
		c.writeCommand(errorCommand(cmd.GetRequestId(), serverError(err), err.Error()))
		return
	}
	c.writeCommand(&pb.BaseCommand{
		Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE_RESPONSE.Enum(),
		GetTopicsOfNamespaceResponse: &pb.CommandGetTopicsOfNamespaceResponse{
			RequestId: proto.Uint64(cmd.GetRequestId()),
			Topics:    topics,
			Filtered:  proto.Bool(false),
			Changed:   proto.Bool(true),
		},
	})
}

// NamespaceTopics lists the topics of a namespace in the given domains:
// stored persistent topics, loaded non-persistent ones, and every partition
// of the partitioned topics. Sorted, without duplicates.
func (b *Broker) NamespaceTopics(ctx context.Context, ns naming.Namespace, domains ...string) ([]string, error) {
	set := map[string]struct{}{}
	for _, d := range domains {
		prefix := d + "://" + ns.String() + "/"
		if d == naming.Persistent {
			stored, err := b.store.Topics(ctx)
			if err != nil {
				return nil, err
			}
			for _, t := range stored {
				if strings.HasPrefix(t, prefix) {
					set[t] = struct{}{}
				}
			}
		}
		for _, t := range b.topicList() {
			if strings.HasPrefix(t.fullName, prefix) {
				set[t.fullName] = struct{}{}
			}
		}
		parts, err := b.meta.PartitionedTopics(ctx, ns, d)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			tn, err := naming.ParseTopic(p)
			if err != nil {
				continue
			}
			n, err := b.meta.PartitionedTopic(ctx, tn)
			if err != nil {
				return nil, err
			}
			for i := 0; i < n; i++ {
				set[tn.Partition(i).String()] = struct{}{}
			}
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}
