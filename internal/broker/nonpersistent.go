package broker

// dispatchNonPersistent hands a message of a non-persistent topic straight to
// one consumer of each subscription; subscriptions without a consumer that
// has permits miss it, as in Pulsar.
func (t *Topic) dispatchNonPersistent(id int64, hp []byte) {
	md, _ := entryMetadata(hp)
	for _, s := range t.subscriptions() {
		s.mu.Lock()
		var c *Consumer
		if s.disp != nil {
			c, _ = s.disp.next(id, &md)
		}
		if c == nil {
			s.mu.Unlock()
			t.b.metrics.msgDropped.Add(float64(md.NumMessagesInBatch))
			continue
		}
		c.permits -= int(md.NumMessagesInBatch)
		c.cn.writeMessage(c.id, 0, id, 0, nil, hp)
		s.countOut(c, int(md.NumMessagesInBatch), len(hp))
		s.mu.Unlock()
		t.b.metrics.msgOut.Add(float64(md.NumMessagesInBatch))
	}
}
