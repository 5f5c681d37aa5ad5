package broker

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// topicCollector exports per-topic metrics with Pulsar's names and labels
// (cluster, namespace, topic), computed at scrape time from the loaded topics.
type topicCollector struct {
	b                                                                      *Broker
	inMsgs, inBytes, backlog, storage, producers, subscriptions, consumers *prometheus.Desc
	outMsgs, outBytes, rateIn, rateOut, throughputIn, throughputOut        *prometheus.Desc

	// Rates are Pulsar-style gauges: the change of the counters since the
	// previous scrape, per second.
	mu   sync.Mutex
	prev map[*Topic]flowSample
}

type flowSample struct {
	at                             time.Time
	inMsgs, inBytes, outMsgs, outB int64
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
		outMsgs:       d("pulsar_out_messages_total", "Messages dispatched from the topic to consumers since it was loaded."),
		outBytes:      d("pulsar_out_bytes_total", "Bytes dispatched from the topic to consumers since it was loaded."),
		rateIn:        d("pulsar_rate_in", "Messages per second published, since the previous scrape."),
		rateOut:       d("pulsar_rate_out", "Messages per second dispatched, since the previous scrape."),
		throughputIn:  d("pulsar_throughput_in", "Bytes per second published, since the previous scrape."),
		throughputOut: d("pulsar_throughput_out", "Bytes per second dispatched, since the previous scrape."),
		prev:          map[*Topic]flowSample{},
	}
}

func (c *topicCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inMsgs, c.inBytes, c.backlog, c.storage, c.producers, c.subscriptions, c.consumers,
		c.outMsgs, c.outBytes, c.rateIn, c.rateOut, c.throughputIn, c.throughputOut} {
		ch <- d
	}
}

func (c *topicCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	seen := map[*Topic]flowSample{}
	for _, t := range c.b.topicList() {
		lv := []string{c.b.cfg.ClusterName, t.name.Namespace.String(), t.fullName}
		ch <- prometheus.MustNewConstMetric(c.inMsgs, prometheus.CounterValue, float64(t.msgIn.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(c.inBytes, prometheus.CounterValue, float64(t.bytesIn.Load()), lv...)
		var backlog, consumers, outMsgs, outBytes int64
		subs := t.subscriptions()
		for _, s := range subs {
			outMsgs += s.out.msgs.Load()
			outBytes += s.out.bytes.Load()
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
		ch <- prometheus.MustNewConstMetric(c.outMsgs, prometheus.CounterValue, float64(outMsgs), lv...)
		ch <- prometheus.MustNewConstMetric(c.outBytes, prometheus.CounterValue, float64(outBytes), lv...)

		cur := flowSample{at: now, inMsgs: t.msgIn.Load(), inBytes: t.bytesIn.Load(), outMsgs: outMsgs, outB: outBytes}
		seen[t] = cur
		var rin, rout, tin, tout float64
		if p, ok := c.prev[t]; ok {
			if secs := now.Sub(p.at).Seconds(); secs > 0 {
				rin = float64(cur.inMsgs-p.inMsgs) / secs
				tin = float64(cur.inBytes-p.inBytes) / secs
				rout = float64(max(cur.outMsgs-p.outMsgs, 0)) / secs
				tout = float64(max(cur.outB-p.outB, 0)) / secs
			}
		}
		ch <- prometheus.MustNewConstMetric(c.rateIn, prometheus.GaugeValue, rin, lv...)
		ch <- prometheus.MustNewConstMetric(c.rateOut, prometheus.GaugeValue, rout, lv...)
		ch <- prometheus.MustNewConstMetric(c.throughputIn, prometheus.GaugeValue, tin, lv...)
		ch <- prometheus.MustNewConstMetric(c.throughputOut, prometheus.GaugeValue, tout, lv...)
	}
	c.prev = seen // unloaded topics drop out
}
