package broker

import (
	"context"

	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Ownership answers, in cluster mode, which broker serves a topic (the
// bundle owner); nil in standalone, where this broker serves every topic.
type Ownership interface {
	// Lookup returns the broker that serves topic (full name) of namespace
	// ns, taking the bundle when it is unowned and this broker is chosen
	// (or authoritative is set: a broker chose this one).
	Lookup(ctx context.Context, ns, topic string, authoritative bool) (OwnerAnswer, error)
	// Owns reports whether this broker owns the bundle of topic now.
	Owns(ns, topic string) bool
}

// OwnerAnswer is where a topic is served.
type OwnerAnswer struct {
	Self      bool
	PulsarURL string
	// PulsarTLSURL is the owner's pulsar+ssl:// URL (empty without TLS).
	PulsarTLSURL string
	HTTPURL      string
	// Listeners are the owner's named advertised listeners.
	Listeners map[string]Listener
	// Assign: the bundle is unowned and the broker at PulsarURL was chosen
	// to take it (answered as a Redirect with authoritative set, as Pulsar).
	Assign bool
}

// Listener is one named advertised listener's URLs (Pulsar's
// advertisedListeners: name:pulsar://host:port and/or name:pulsar+ssl://...).
type Listener struct {
	PulsarURL    string
	PulsarTLSURL string
}

// errNoListener is Pulsar's answer to a lookup naming a listener the broker
// does not advertise.
func errNoListener(name string) error {
	return newError(pb.ServerError_ServiceNotReady, "the broker do not have "+name+" listener")
}

// errNotServed makes a client that reached a broker not owning the topic's
// bundle look it up again (Pulsar's message and retriable code).
func errNotServed(t naming.Topic) error {
	return newError(pb.ServerError_ServiceNotReady,
		"Namespace bundle for topic ("+t.String()+") not served by this instance. Please redo the lookup. Request is denied: namespace="+t.Namespace.String())
}

// checkOwner refuses to load a topic whose bundle this broker does not own.
func (b *Broker) checkOwner(t naming.Topic) error {
	if o := b.cfg.Ownership; o != nil && t.IsPersistent() && !o.Owns(t.Namespace.String(), t.String()) {
		return errNotServed(t)
	}
	return nil
}

// UnloadMatching unloads every loaded topic whose full name match accepts
// (a bundle this broker stops owning); it returns when they are closed.
func (b *Broker) UnloadMatching(match func(topic string) bool) {
	b.mu.Lock()
	var names []string
	for name := range b.topics {
		if match(name) {
			names = append(names, name)
		}
	}
	b.mu.Unlock()
	for _, name := range names {
		if err := b.UnloadTopic(name); err != nil {
			b.log.Warn("unload of a released bundle's topic failed", "topic", name, "err", err)
		}
	}
}

// LoadedTopics is the number of topics loaded (the load a cluster broker reports).
func (b *Broker) LoadedTopics() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.topics)
}
