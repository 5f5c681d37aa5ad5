package broker

// UnloadTopic closes a loaded topic: its producers and consumers get
// CLOSE_PRODUCER / CLOSE_CONSUMER and reconnect through a fresh lookup, its
// cursors are saved and its ledger closed. The next use loads it again.
// Unloading a topic that is not loaded does nothing.
func (b *Broker) UnloadTopic(fullName string) error {
	// Held throughout so the topic cannot be reloaded while its ledger closes.
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unloadLocked(fullName)
}

// unloadLocked is UnloadTopic with b.mu held (DeleteTopic keeps holding it).
func (b *Broker) unloadLocked(fullName string) error {
	t := b.topics[fullName]
	if t == nil {
		return nil
	}
	delete(b.topics, fullName)

	t.mu.Lock()
	t.closed = true
	producers := make([]*Producer, 0, len(t.producers))
	for _, p := range t.producers {
		producers = append(producers, p)
	}
	t.producers = map[string]*Producer{}
	subs := make([]*Subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()

	for _, p := range producers {
		p.closeByBroker()
		b.metrics.producers.Dec()
	}
	for _, s := range subs {
		s.mu.Lock()
		var consumers []*Consumer
		if s.disp != nil {
			consumers = append(consumers, s.disp.consumers()...)
		}
		s.mu.Unlock()
		for _, c := range consumers {
			c.closeByBroker()
			b.metrics.consumers.Dec()
		}
	}
	return t.close()
}
