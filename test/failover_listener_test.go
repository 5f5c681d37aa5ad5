package test

import (
	"sync"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// activeListener records what a failover consumer was told (the client's
// ConsumerEventListener).
type activeListener struct {
	mu     sync.Mutex
	active map[string]map[int32]bool // consumer name -> partition -> active
}

func (l *activeListener) BecameActive(c pulsar.Consumer, _ string, partition int32) {
	l.set(c.Name(), partition, true)
}

func (l *activeListener) BecameInactive(c pulsar.Consumer, _ string, partition int32) {
	l.set(c.Name(), partition, false)
}

func (l *activeListener) set(name string, partition int32, active bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active[name] == nil {
		l.active[name] = map[int32]bool{}
	}
	l.active[name][partition] = active
}

func (l *activeListener) count(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.active[name] {
		if a {
			n++
		}
	}
	return n
}

// A failover consumer learns it is active, also the first one of a
// subscription (ACTIVE_CONSUMER_CHANGE after the SUBSCRIBE success, which
// the client needs to know the consumer), and the partitions of a
// partitioned topic spread when a second consumer joins.
func TestFailoverConsumersLearnTheirState(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	topic := uniqueTopic(t)
	if err := admin.Topics().Create(topicName(t, topic), 3); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s.BrokerURL())
	l := &activeListener{active: map[string]map[int32]bool{}}
	sub := func(name string) pulsar.Consumer {
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Name: name,
			Type: pulsar.Failover, EventListener: l})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cons.Close)
		return cons
	}
	sub("c0")
	eventually(t, "c0 active on all 3 partitions", func() bool { return l.count("c0") == 3 })
	sub("c1")
	eventually(t, "the partitions spread over c0 and c1", func() bool {
		a, b := l.count("c0"), l.count("c1")
		return a+b == 3 && a > 0 && b > 0
	})
}
