package broker

import "github.com/messagebus/messagebus/internal/meta"

// Unacked-message limits, as Pulsar's maxUnackedMessagesPerConsumer and
// maxUnackedMessagesPerSubscription: on Shared and Key_Shared subscriptions
// (the individual-ack types) a consumer holding its limit of delivered,
// unacknowledged messages gets nothing more until it acknowledges down to
// half of it; a subscription at its limit stops dispatching to all its
// consumers the same way. Counts are in messages (batch entries count their
// messages) and are released when an entry is fully acknowledged or
// returned for redelivery. The limits are read when a consumer subscribes.

// available reports whether the dispatcher may give c an entry now.
// Called with c.sub.mu held.
func (c *Consumer) available() bool {
	return c.permits > 0 && !c.unackedBlocked
}

// setUnackedLimits applies the effective policies' limits to the
// subscription and to c, which is joining it. Called with s.mu held.
func (s *Subscription) setUnackedLimits(c *Consumer, p meta.Policies) {
	if !isShared(s.subType) {
		return
	}
	c.maxUnacked = valueOrInt(p.MaxUnackedMessagesPerConsumer, int(s.topic.b.dyn.maxUnackedPerConsumer.Load()))
	s.maxUnacked = valueOrInt(p.MaxUnackedMessagesPerSubscription, int(s.topic.b.dyn.maxUnackedPerSubscription.Load()))
	s.checkUnackedBlock()
}

// countDelivered counts n messages delivered to c. Called with s.mu held.
func (s *Subscription) countDelivered(c *Consumer, n int) {
	if !isShared(s.subType) {
		return
	}
	c.unacked += n
	s.unacked += n
	if c.maxUnacked > 0 && c.unacked >= c.maxUnacked && !c.unackedBlocked {
		c.unackedBlocked = true
		s.topic.b.metrics.limits.unackedBlocked.WithLabelValues("consumer").Inc()
	}
	s.checkUnackedBlock()
}

// countReleased counts n messages of c acknowledged or returned. Called
// with s.mu held.
func (s *Subscription) countReleased(c *Consumer, n int) {
	if !isShared(s.subType) {
		return
	}
	c.unacked = max(c.unacked-n, 0)
	s.unacked = max(s.unacked-n, 0)
	if c.unackedBlocked && c.unacked <= c.maxUnacked/2 {
		c.unackedBlocked = false
		s.signal() // acks do not wake dispatch otherwise
	}
	s.checkUnackedBlock()
}

// checkUnackedBlock blocks the subscription at its limit and unblocks it at
// half of it. Called with s.mu held.
func (s *Subscription) checkUnackedBlock() {
	switch {
	case s.maxUnacked > 0 && s.unacked >= s.maxUnacked && !s.unackedBlocked:
		s.unackedBlocked = true
		s.topic.b.metrics.limits.unackedBlocked.WithLabelValues("subscription").Inc()
	case s.unackedBlocked && (s.maxUnacked <= 0 || s.unacked <= s.maxUnacked/2):
		s.unackedBlocked = false
		s.signal()
	}
}

func valueOrInt(p *int, def int) int {
	if p != nil {
		return *p
	}
	return def
}
