package broker

import (
	"context"
	"errors"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// checkAutoCreate refuses to create a topic implicitly (by a producer or a
// consumer) when the namespace's auto topic creation override forbids it.
// Topics are auto-created by default, as in Pulsar.
func (b *Broker) checkAutoCreate(ctx context.Context, name naming.Topic) error {
	ok, err := b.mayUse(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return newError(pb.ServerError_TopicNotFound, autoCreateRefusal(name))
	}
	return b.checkImplicitTopicQuota(ctx, name)
}

// checkImplicitTopicQuota applies max_topics_per_namespace to a topic a
// producer or consumer would create. Partitions are counted when their
// partitioned topic is created.
func (b *Broker) checkImplicitTopicQuota(ctx context.Context, name naming.Topic) error {
	if name.PartitionIndex() >= 0 {
		return nil
	}
	if limit, err := b.topicLimit(ctx, name.Namespace); err != nil || limit <= 0 {
		return err
	}
	if exists, err := b.TopicExists(ctx, name); err != nil || exists {
		return err
	}
	if err := b.CheckTopicQuota(ctx, name, 0); err != nil {
		if errors.Is(err, ErrTooManyTopics) {
			return newError(pb.ServerError_NotAllowedError, err.Error())
		}
		return err
	}
	return nil
}

// mayUse reports whether a topic exists or may be created implicitly.
func (b *Broker) mayUse(ctx context.Context, name naming.Topic) (bool, error) {
	p, err := b.policies.Namespace(ctx, name.Namespace)
	if err != nil {
		// Unknown namespaces fail where the topic loads; others are retried.
		if errors.Is(err, meta.ErrNotFound) {
			return true, nil
		}
		return false, b.metadataError("namespace", err)
	}
	o := p.AutoTopicCreationOverride
	if o == nil || o.AllowAutoTopicCreation {
		return true, nil
	}
	return b.TopicExists(ctx, name)
}

func autoCreateRefusal(name naming.Topic) string {
	return "topic " + name.String() + " does not exist and auto topic creation is disabled in namespace " + name.Namespace.String()
}

// autoPartitions creates a partitioned topic on first lookup when the
// namespace asks for auto-created topics to be partitioned, and returns its
// partition count (0: not partitioned).
func (b *Broker) autoPartitions(ctx context.Context, name naming.Topic) (int, error) {
	n, err := b.meta.PartitionedTopic(ctx, name)
	if err != nil || n > 0 || name.PartitionIndex() >= 0 {
		return n, err
	}
	p, err := b.policies.Namespace(ctx, name.Namespace)
	if err != nil {
		return 0, err
	}
	o := p.AutoTopicCreationOverride
	if o == nil || !o.AllowAutoTopicCreation || o.TopicType != "partitioned" || o.DefaultNumPartitions == nil || *o.DefaultNumPartitions <= 0 {
		return 0, nil
	}
	if exists, err := b.TopicExists(ctx, name); err != nil || exists {
		return 0, err // an existing non-partitioned topic stays as it is
	}
	err = b.meta.PutPartitionedTopic(ctx, name, *o.DefaultNumPartitions, true)
	if err != nil && !errors.Is(err, meta.ErrExists) {
		return 0, err
	}
	return b.meta.PartitionedTopic(ctx, name)
}
