package broker

import "github.com/prometheus/client_golang/prometheus"

// topicCollector exports per-topic metrics with Pulsar's names and labels
// (cluster, namespace, topic), computed at scrape time from the loaded topics.
type topicCollector struct {
	b                                                                      *Broker
	inMsgs, inBytes, backlog, storage, producers, subscriptions, consumers *prometheus.Desc
}

// Collector returns the per-topic metrics collector; register it once.
func (b *Broker) Collector() prometheus.Collector {
	labels := []string{"cluster", "namespace", "topic"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &topicCollector{
		b:             b,
		inMsgs:        d("pulsar_in_messages_total", "Messages published to the topic since it was loaded."),
		inBytes:       d("pulsar_in_bytes_total", "Bytes published to the topic since it was loaded."),
		backlog:       d("pulsar_msg_backlog", "Unacknowledged entries summed over the topic's durable subscriptions."),
		storage:       d("pulsar_storage_size", "Bytes stored for the topic."),
		producers:     d("pulsar_producers_count", "Producers connected to the topic."),
		subscriptions: d("pulsar_subscriptions_count", "Subscriptions of the topic."),
		consumers:     d("pulsar_consumers_count", "Consumers connected to the topic."),
	}
}

func (c *topicCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inMsgs, c.inBytes, c.backlog, c.storage, c.producers, c.subscriptions, c.consumers} {
		ch <- d
	}
}

func (c *topicCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.b.topicList() {
		lv := []string{c.b.cfg.ClusterName, t.name.Namespace.String(), t.fullName}
		ch <- prometheus.MustNewConstMetric(c.inMsgs, prometheus.CounterValue, float64(t.msgIn.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(c.inBytes, prometheus.CounterValue, float64(t.bytesIn.Load()), lv...)
		var backlog, consumers int64
		subs := t.subscriptions()
		for _, s := range subs {
			s.mu.Lock()
			if s.disp != nil {
				consumers += int64(len(s.disp.consumers()))
			}
			s.mu.Unlock()
			if s.durable && t.ledger != nil {
				n, _ := s.backlog(t.ledger.LastEntryID())
				backlog += n
			}
		}
		var storage int64
		if t.ledger != nil {
			storage = t.ledger.Size()
		}
		t.mu.Lock()
		producers := len(t.producers)
		t.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(backlog), lv...)
		ch <- prometheus.MustNewConstMetric(c.storage, prometheus.GaugeValue, float64(storage), lv...)
		ch <- prometheus.MustNewConstMetric(c.producers, prometheus.GaugeValue, float64(producers), lv...)
		ch <- prometheus.MustNewConstMetric(c.subscriptions, prometheus.GaugeValue, float64(len(subs)), lv...)
		ch <- prometheus.MustNewConstMetric(c.consumers, prometheus.GaugeValue, float64(consumers), lv...)
	}
}
