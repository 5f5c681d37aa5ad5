package broker

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// topicCollector exports per-topic metrics with Pulsar's names and labels
// (cluster, namespace, topic), computed at scrape time from the loaded
// topics. With Config.NamespaceLevelMetrics the same names are emitted
// summed per namespace, without the topic label, as Pulsar does with
// exposeTopicLevelMetricsInPrometheus=false: many topics make many series.
type topicCollector struct {
	b                                                                      *Broker
	perNamespace                                                           bool
	inMsgs, inBytes, backlog, storage, producers, subscriptions, consumers *prometheus.Desc
	outMsgs, outBytes, rateIn, rateOut, throughputIn, throughputOut        *prometheus.Desc
	topics                                                                 *prometheus.Desc // per namespace only
	compactedEntries, compactedSize                                        *prometheus.Desc

	// Rates are Pulsar-style gauges: the change of the counters since the
	// previous scrape, per second.
	mu   sync.Mutex
	prev map[*Topic]flowSample
}

type flowSample struct {
	at                             time.Time
	inMsgs, inBytes, outMsgs, outB int64
}

// topicSample is what a scrape reports of one topic, or of a namespace's
// topics summed.
type topicSample struct {
	inMsgs, inBytes, outMsgs, outBytes                    int64
	backlog, storage, producers, subscriptions, consumers int64
	rateIn, rateOut, throughputIn, throughputOut          float64
	topics                                                int64
	compactedEntries, compactedSize                       int64
}

func (s *topicSample) add(o topicSample) {
	s.inMsgs += o.inMsgs
	s.inBytes += o.inBytes
	s.outMsgs += o.outMsgs
	s.outBytes += o.outBytes
	s.backlog += o.backlog
	s.storage += o.storage
	s.producers += o.producers
	s.subscriptions += o.subscriptions
	s.consumers += o.consumers
	s.rateIn += o.rateIn
	s.rateOut += o.rateOut
	s.throughputIn += o.throughputIn
	s.throughputOut += o.throughputOut
	s.topics += o.topics
	s.compactedEntries += o.compactedEntries
	s.compactedSize += o.compactedSize
}

// Collector returns the per-topic (or per-namespace) metrics collector;
// register it once.
func (b *Broker) Collector() prometheus.Collector {
	labels := []string{"cluster", "namespace", "topic"}
	if b.cfg.NamespaceLevelMetrics {
		labels = labels[:2]
	}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	c := &topicCollector{
		b:             b,
		perNamespace:  b.cfg.NamespaceLevelMetrics,
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
		compactedEntries: d("pulsar_compaction_compacted_entries_count",
			"Entries in the topic's compacted view (compaction.go)."),
		compactedSize: d("pulsar_compaction_compacted_entries_size", "Bytes in the topic's compacted view."),
	}
	if c.perNamespace {
		c.topics = d("pulsar_topics_count", "Loaded topics of the namespace.")
	}
	return c
}

func (c *topicCollector) descs() []*prometheus.Desc {
	ds := []*prometheus.Desc{c.inMsgs, c.inBytes, c.backlog, c.storage, c.producers, c.subscriptions, c.consumers,
		c.outMsgs, c.outBytes, c.rateIn, c.rateOut, c.throughputIn, c.throughputOut, c.compactedEntries, c.compactedSize}
	if c.topics != nil {
		ds = append(ds, c.topics)
	}
	return ds
}

func (c *topicCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

func (c *topicCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	seen := map[*Topic]flowSample{}
	namespaces := map[string]*topicSample{}
	for _, t := range c.b.topicList() {
		s := c.sample(t, now, seen)
		if !c.perNamespace {
			c.emit(ch, s, c.b.cfg.ClusterName, t.name.Namespace.String(), t.fullName)
			continue
		}
		ns := t.name.Namespace.String()
		if namespaces[ns] == nil {
			namespaces[ns] = &topicSample{}
		}
		namespaces[ns].add(s)
	}
	names := make([]string, 0, len(namespaces))
	for ns := range namespaces {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		c.emit(ch, *namespaces[ns], c.b.cfg.ClusterName, ns)
	}
	c.prev = seen // unloaded topics drop out
}

// sample reads one topic's counters and gauges and its rates since the
// previous scrape, recording this scrape's counters in seen.
func (c *topicCollector) sample(t *Topic, now time.Time, seen map[*Topic]flowSample) topicSample {
	s := topicSample{inMsgs: t.msgIn.Load(), inBytes: t.bytesIn.Load(), topics: 1}
	subs := t.subscriptions()
	s.subscriptions = int64(len(subs))
	for _, sub := range subs {
		s.outMsgs += sub.out.msgs.Load()
		s.outBytes += sub.out.bytes.Load()
		sub.mu.Lock()
		if sub.disp != nil {
			s.consumers += int64(len(sub.disp.consumers()))
		}
		sub.mu.Unlock()
		if sub.durable && t.ledger != nil {
			n, _ := sub.backlog(t.ledger.LastEntryID())
			s.backlog += n
		}
	}
	if t.ledger != nil {
		s.storage = t.ledger.Size()
		if v := t.compactedView(); v.l != nil {
			s.compactedEntries, s.compactedSize = v.l.Entries(), v.l.Size()
		}
	}
	t.mu.Lock()
	s.producers = int64(len(t.producers))
	t.mu.Unlock()

	cur := flowSample{at: now, inMsgs: s.inMsgs, inBytes: s.inBytes, outMsgs: s.outMsgs, outB: s.outBytes}
	seen[t] = cur
	if p, ok := c.prev[t]; ok {
		if secs := now.Sub(p.at).Seconds(); secs > 0 {
			s.rateIn = float64(cur.inMsgs-p.inMsgs) / secs
			s.throughputIn = float64(cur.inBytes-p.inBytes) / secs
			s.rateOut = float64(max(cur.outMsgs-p.outMsgs, 0)) / secs
			s.throughputOut = float64(max(cur.outB-p.outB, 0)) / secs
		}
	}
	return s
}

func (c *topicCollector) emit(ch chan<- prometheus.Metric, s topicSample, lv ...string) {
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter(c.inMsgs, s.inMsgs)
	counter(c.inBytes, s.inBytes)
	counter(c.outMsgs, s.outMsgs)
	counter(c.outBytes, s.outBytes)
	gauge(c.backlog, float64(s.backlog))
	gauge(c.storage, float64(s.storage))
	gauge(c.producers, float64(s.producers))
	gauge(c.subscriptions, float64(s.subscriptions))
	gauge(c.consumers, float64(s.consumers))
	gauge(c.rateIn, s.rateIn)
	gauge(c.rateOut, s.rateOut)
	gauge(c.throughputIn, s.throughputIn)
	gauge(c.throughputOut, s.throughputOut)
	gauge(c.compactedEntries, float64(s.compactedEntries))
	gauge(c.compactedSize, float64(s.compactedSize))
	if c.topics != nil {
		gauge(c.topics, float64(s.topics))
	}
}
