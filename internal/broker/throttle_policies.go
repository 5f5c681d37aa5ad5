package broker

import (
	"net"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Rate policies: publishRate throttles what a topic takes (the connection
// of a producer over the rate stops being read until the debt is paid, as
// Pulsar stops auto-read), dispatchRate what a topic's subscriptions
// dispatch together, subscriptionDispatchRate what one subscription
// dispatches, and subscribeRate how often one consumer (client address
// and consumer name) may subscribe per period.

// topicRates is a topic's throttles; limits.go's applyLimits keeps them current.
type topicRates struct {
	mu        sync.Mutex
	publish   *throttle
	dispatch  *throttle
	subRate   *throttle // template of each subscription's own
	subscribe *meta.SubscribeRate
	windows   map[string]*subscribeWindow
}

type subscribeWindow struct {
	start time.Time
	n     int
}

// applyRates installs the rates in force. Unchanged throttles are kept.
func (t *Topic) applyRates(p meta.Policies) {
	r := p.Rates(t.b.cfg.ClusterName)
	pub, disp, sub := publishThrottle(r.Publish), dispatchThrottle(r.Dispatch), dispatchThrottle(r.SubscriptionDispatch)
	t.rates.mu.Lock()
	if !t.rates.publish.sameAs(pub) {
		t.rates.publish = pub
	}
	if !t.rates.dispatch.sameAs(disp) {
		t.rates.dispatch = disp
	}
	changedSub := !t.rates.subRate.sameAs(sub)
	t.rates.subRate = sub
	t.rates.subscribe = r.Subscribe
	t.rates.mu.Unlock()
	if changedSub {
		for _, s := range t.subscriptions() {
			s.mu.Lock()
			s.throttle = dispatchThrottle(r.SubscriptionDispatch)
			s.mu.Unlock()
		}
	}
}

func (t *Topic) publishThrottle() *throttle {
	t.rates.mu.Lock()
	defer t.rates.mu.Unlock()
	return t.rates.publish
}

func (t *Topic) dispatchThrottle() *throttle {
	t.rates.mu.Lock()
	defer t.rates.mu.Unlock()
	return t.rates.dispatch
}

// newSubscriptionThrottle is a new subscription's own dispatch throttle.
func (t *Topic) newSubscriptionThrottle() *throttle {
	t.rates.mu.Lock()
	defer t.rates.mu.Unlock()
	if t.rates.subRate == nil {
		return nil
	}
	return newThrottle(int64(t.rates.subRate.msgs.limit), int64(t.rates.subRate.bytes.limit), int(t.rates.subRate.period/time.Second))
}

// throttlePublish holds the connection's reading while the topic's publish
// rate is in debt, then counts the send. Reports false when the
// connection closed meanwhile.
func (c *conn) throttlePublish(t *Topic, msgs, size int) bool {
	th := t.publishThrottle()
	if th == nil {
		return true
	}
	if d := th.delay(time.Now()); d > 0 {
		c.b.metrics.limits.throttled.WithLabelValues("publish").Inc()
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-c.ctx.Done():
			timer.Stop()
			return false
		}
	}
	th.take(msgs, size, time.Now())
	return true
}

// dispatchDelay is how long the subscription must wait for its own and its
// topic's dispatch rates. Called with s.mu held.
func (s *Subscription) dispatchDelay(now time.Time) time.Duration {
	var d time.Duration
	if th := s.topic.dispatchThrottle(); th != nil {
		d = th.delay(now)
	}
	if s.throttle != nil {
		d = max(d, s.throttle.delay(now))
	}
	if d > 0 {
		s.topic.b.metrics.limits.throttled.WithLabelValues("dispatch").Inc()
	}
	return d
}

// throttled reports whether a dispatch rate is in debt, and if so sets
// throttledUntil to when it is paid. Called with s.mu held.
func (s *Subscription) throttled() bool {
	now := time.Now()
	if d := s.dispatchDelay(now); d > 0 {
		s.throttledUntil = now.Add(d)
		return true
	}
	return false
}

// readBudget bounds a dispatch round's read by what the dispatch rates
// have left (at least one entry: a rate's debt is paid by waiting).
func (s *Subscription) readBudget(entries int) (int, int) {
	size := maxDispatchBytes
	for _, th := range []*throttle{s.topic.dispatchThrottle(), s.throttleOf()} {
		if th != nil {
			m, b := th.left()
			entries, size = min(entries, max(m, 1)), min(size, max(b, 1))
		}
	}
	return entries, size
}

func (s *Subscription) throttleOf() *throttle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttle
}

// countDispatched charges a delivery to the dispatch rates. Called with s.mu held.
func (s *Subscription) countDispatched(msgs, size int) {
	now := time.Now()
	if th := s.topic.dispatchThrottle(); th != nil {
		th.take(msgs, size, now)
	}
	if s.throttle != nil {
		s.throttle.take(msgs, size, now)
	}
}

// checkSubscribeRate refuses a subscribe past the consumer's subscribe
// rate: at most subscribeThrottlingRatePerConsumer per ratePeriodInSecond
// for one client address and consumer name.
func (t *Topic) checkSubscribeRate(c *conn, consumerName string) error {
	t.rates.mu.Lock()
	defer t.rates.mu.Unlock()
	r := t.rates.subscribe
	if r == nil || r.SubscribeThrottlingRatePerConsumer <= 0 {
		return nil
	}
	period := time.Duration(max(r.RatePeriodInSecond, 1)) * time.Second
	now := time.Now()
	if t.rates.windows == nil {
		t.rates.windows = map[string]*subscribeWindow{}
	}
	if len(t.rates.windows) > 1024 {
		for k, w := range t.rates.windows {
			if now.Sub(w.start) >= period {
				delete(t.rates.windows, k)
			}
		}
	}
	key := clientHost(c) + "/" + consumerName
	w := t.rates.windows[key]
	if w == nil || now.Sub(w.start) >= period {
		w = &subscribeWindow{start: now}
		t.rates.windows[key] = w
	}
	if w.n >= r.SubscribeThrottlingRatePerConsumer {
		t.b.metrics.limits.throttled.WithLabelValues("subscribe").Inc()
		// Pulsar's words.
		return newError(pb.ServerError_NotAllowedError, "Subscribe limited by subscribe rate limit per consumer.")
	}
	w.n++
	return nil
}

func clientHost(c *conn) string {
	if c == nil || c.nc == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return c.nc.RemoteAddr().String()
	}
	return host
}
