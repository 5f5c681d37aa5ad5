package cluster

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrFenced is returned (wrapped) by the appends and checkpoints of a topic
// whose fencing token no longer matches: another broker owns it now, or the
// lease that held it expired. The ledger never commits again; the broker
// must close it (clients reconnect to the new owner).
var ErrFenced = errors.New("cluster ledger: fenced: this broker no longer owns the topic")

// ErrOwned is returned by Open when another broker owns the topic (with the
// store's own per-topic owner keys).
var ErrOwned = errors.New("cluster ledger: topic owned by another broker")

// Fence is the fencing token of a topic: commits are guarded by "the create
// revision of Key is Rev". The owner key is bound to the owner's lease, so
// it disappears when the lease expires, and a new owner's key has a new
// create revision.
type Fence struct {
	Key string
	Rev int64
}

// Cmp is the guard "the owner key still has the token's create revision".
func (f Fence) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev)
}

// ownTopic takes the per-topic owner key of topic with the store's lease
// (create revision == 0) or finds it already ours.
func (s *Store) ownTopic(ctx context.Context, topic string) (Fence, error) {
	key := s.keys.owner(topic)
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, s.o.Broker, clientv3.WithLease(s.lease))).
		Else(clientv3.OpGet(key)).Commit()
	s.m.txns.Inc()
	if err != nil {
		return Fence{}, fmt.Errorf("cluster ledger: own %s: %w", topic, err)
	}
	if resp.Succeeded {
		return Fence{Key: key, Rev: resp.Header.Revision}, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && clientv3.LeaseID(kvs[0].Lease) == s.lease {
		return Fence{Key: key, Rev: kvs[0].CreateRevision}, nil
	}
	owner := ""
	if len(kvs) == 1 {
		owner = string(kvs[0].Value)
	}
	return Fence{}, fmt.Errorf("%w: %s is owned by %q", ErrOwned, topic, owner)
}
