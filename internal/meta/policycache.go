package meta

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/naming"
	"golang.org/x/sync/singleflight"
)

// PolicyCache serves tenants, namespace policies and topic policies from
// memory, kept fresh by WatchPolicies. It is the one policy source of a
// broker: authorization (grants, tenant admins) and policy enforcement read
// through the same cache, so a PRODUCER or SUBSCRIBE costs no metadata read
// once its namespace is cached.
//
// Errors are returned, never turned into defaults: a caller that cannot
// read a policy must not act as if none were set. Missing tenants and
// namespaces are ErrNotFound (not cached); a topic without policies has the
// zero TopicPolicies (cached: most topics have none).
//
// Concurrent misses of one record share one read (singleflight). The read
// runs with the first caller's context values but not its cancellation, and
// with ReadTimeout, so a caller that gives up does not fail the others;
// it ends when Run's context does.
type PolicyCache struct {
	r           *Resources
	readTimeout time.Duration
	flight      singleflight.Group

	mu sync.Mutex
	// life is Run's context: reads in flight end with it.
	life context.Context
	// gen counts invalidations: a value read while one happened may be
	// stale and is not cached.
	gen     uint64
	tenants map[string]TenantInfo
	ns      map[string]Policies
	topics  map[string]TopicPolicies // by TopicPoliciesKey
	subs    []chan struct{}
}

// maxCachedTopicPolicies bounds the topic policies cached, most of them "none".
const maxCachedTopicPolicies = 100000

// DefaultPolicyReadTimeout bounds a cache miss's read when none is given.
const DefaultPolicyReadTimeout = 30 * time.Second

// NewPolicyCache returns an empty cache over r. Run keeps it fresh; until
// Run has started, changes made by other processes may be missed. r's
// Store is wrapped so that writes through r invalidate the cache at once;
// call it before r is shared with goroutines.
func NewPolicyCache(r *Resources, readTimeout time.Duration) *PolicyCache {
	if readTimeout <= 0 {
		readTimeout = DefaultPolicyReadTimeout
	}
	c := &PolicyCache{
		r:           r,
		readTimeout: readTimeout,
		tenants:     map[string]TenantInfo{},
		ns:          map[string]Policies{},
		topics:      map[string]TopicPolicies{},
	}
	// Writes through r (the admin API, the broker) reach the cache at once.
	r.Store = notifyingStore{Store: r.Store, after: c.written}
	return c
}

// Resources returns the records the cache reads.
func (c *PolicyCache) Resources() *Resources { return c.r }

// Run applies policy changes to the cache until ctx ends: a changed record
// is forgotten (read again at its next use) and a reset forgets everything.
// Subscribers are told after each change.
func (c *PolicyCache) Run(ctx context.Context) {
	c.mu.Lock()
	c.life = ctx
	c.mu.Unlock()
	for ch := range c.r.WatchPolicies(ctx) {
		c.apply(ch)
	}
}

// apply forgets what ch changed and wakes the subscribers.
func (c *PolicyCache) apply(ch PolicyChange) {
	c.mu.Lock()
	switch ch.Kind {
	case PolicyReset:
		clear(c.tenants)
		clear(c.ns)
		clear(c.topics)
	case TenantChanged:
		delete(c.tenants, ch.Tenant)
	case NamespaceChanged:
		delete(c.ns, ch.Namespace.String())
	case TopicPoliciesChanged:
		delete(c.topics, TopicPoliciesKey(ch.Topic))
	}
	c.gen++
	subs := c.subs
	c.mu.Unlock()
	for _, s := range subs {
		select {
		case s <- struct{}{}:
		default: // one pending wake-up is enough
		}
	}
}

// written is called after a write through the cache's Resources succeeded:
// the record is forgotten at once, so this process reads its own writes (a
// grant is in force for the next producer, as in Pulsar, whose metadata
// cache is updated by its own writes), without waiting for the watch.
func (c *PolicyCache) written(key string) {
	if ch, ok := policyChange(Event{Type: EventPut, KV: KV{Key: key}}); ok {
		c.apply(ch)
	}
}

// notifyingStore calls after once a Put or Delete succeeded.
type notifyingStore struct {
	Store
	after func(key string)
}

func (n notifyingStore) Put(ctx context.Context, key string, value []byte, expected int64) (int64, error) {
	v, err := n.Store.Put(ctx, key, value, expected)
	if err == nil {
		n.after(key)
	}
	return v, err
}

func (n notifyingStore) Delete(ctx context.Context, key string, expected int64) error {
	err := n.Store.Delete(ctx, key, expected)
	if err == nil {
		n.after(key)
	}
	return err
}

// Subscribe returns a channel that receives a value after policies change
// (several changes may coalesce into one value). It is never closed.
func (c *PolicyCache) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs = append(c.subs, ch)
	c.mu.Unlock()
	return ch
}

// Tenant returns a tenant's info; ErrNotFound when it does not exist.
func (c *PolicyCache) Tenant(ctx context.Context, name string) (TenantInfo, error) {
	return cached(c, ctx, c.tenants, name, "t/"+name, func(ctx context.Context) (TenantInfo, error) {
		return c.r.Tenant(ctx, name)
	})
}

// Namespace returns a namespace's policies; ErrNotFound when it does not exist.
func (c *PolicyCache) Namespace(ctx context.Context, ns naming.Namespace) (Policies, error) {
	key := ns.String()
	return cached(c, ctx, c.ns, key, "n/"+key, func(ctx context.Context) (Policies, error) {
		return c.r.Namespace(ctx, ns)
	})
}

// TopicPolicies returns the policies set on t (for a partition, on its
// partitioned topic); the zero value when none are set.
func (c *PolicyCache) TopicPolicies(ctx context.Context, t naming.Topic) (TopicPolicies, error) {
	key := TopicPoliciesKey(t)
	return cached(c, ctx, c.topics, key, "p/"+key, func(ctx context.Context) (TopicPolicies, error) {
		return c.r.TopicPolicies(ctx, t)
	})
}

// cached returns m[key], or reads it once for all concurrent callers and
// caches it unless an invalidation happened meanwhile.
func cached[V any](c *PolicyCache, ctx context.Context, m map[string]V, key, flightKey string, read func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	v, ok := m[key]
	gen, life := c.gen, c.life
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	// The generation is part of the flight's key: a caller that arrives
	// after an invalidation starts a fresh read.
	ch := c.flight.DoChan(strconv.FormatUint(gen, 10)+"/"+flightKey, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.readTimeout)
		defer cancel()
		if life != nil {
			defer context.AfterFunc(life, cancel)()
		}
		v, err := read(rctx)
		if err != nil {
			return v, err
		}
		c.mu.Lock()
		if c.gen == gen {
			if len(m) >= maxCachedTopicPolicies {
				clear(m) // names of deleted topics would stay forever: start afresh
			}
			m[key] = v
		}
		c.mu.Unlock()
		return v, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			var zero V
			return zero, res.Err
		}
		return res.Val.(V), nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
