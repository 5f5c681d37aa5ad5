package broker

// UnloadTopic closes a loaded topic: its producers and consumers get
// CLOSE_PRODUCER / CLOSE_CONSUMER and reconnect through a fresh lookup, its
// cursors are saved and its ledger closed. The next use loads it again.
// Unloading a topic that is not loaded does nothing.
// A load in flight is discarded.
func (b *Broker) UnloadTopic(fullName string) error {
	// Fenced throughout so the topic cannot be reloaded while its ledger closes.
	release := b.fence(fullName)
	defer release()
	return b.unloadFenced(fullName)
}

// unloadFenced is UnloadTopic for a caller that holds the topic's fence
// (DeleteTopic keeps holding it).
func (b *Broker) unloadFenced(fullName string) error {
	b.mu.Lock()
	t := b.topics[fullName]
	delete(b.topics, fullName)
	b.mu.Unlock()
	if t == nil {
		return nil
	}

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
