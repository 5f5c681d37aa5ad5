package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replicationCollector exports geo-replication's per-link series with
// Pulsar's names, labelled cluster, namespace, topic and remote_cluster
// (summed per namespace, without topic, with NamespaceLevelMetrics).
type replicationCollector struct {
	b                                   *Broker
	backlog, rateOut, throughputOut     *prometheus.Desc
	delay, connected, msgsOut, bytesOut *prometheus.Desc
}

// ReplicationCollector returns the geo-replication metrics collector;
// register it once.
func (b *Broker) ReplicationCollector() prometheus.Collector {
	labels := []string{"cluster", "namespace", "topic", "remote_cluster"}
	if b.cfg.NamespaceLevelMetrics {
		labels = []string{"cluster", "namespace", "remote_cluster"}
	}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &replicationCollector{
		b:             b,
		backlog:       d("pulsar_replication_backlog", "Entries of the topic not yet replicated to the remote cluster."),
		rateOut:       d("pulsar_replication_rate_out", "Messages per second replicated to the remote cluster."),
		throughputOut: d("pulsar_replication_throughput_out", "Bytes per second replicated to the remote cluster."),
		delay:         d("pulsar_replication_delay_in_seconds", "Age of the oldest entry not yet replicated to the remote cluster (0 when none)."),
		connected:     d("pulsar_replication_connected_count", "1 when the replicator is connected to the remote cluster, else 0."),
		msgsOut:       d("mb_replication_out_messages_total", "Messages replicated to the remote cluster since the topic was loaded."),
		bytesOut:      d("mb_replication_out_bytes_total", "Bytes replicated to the remote cluster since the topic was loaded."),
	}
}

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.backlog, c.rateOut, c.throughputOut, c.delay, c.connected, c.msgsOut, c.bytesOut} {
		ch <- d
	}
}

type replicationSample struct {
	backlog, delay, connected, msgs, bytes int64
	rate, tput                             float64
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	perNS := c.b.cfg.NamespaceLevelMetrics
	type key struct{ ns, remote string }
	sums := map[key]*replicationSample{}
	var order []key
	for _, t := range c.b.topicList() {
		for remote, st := range t.replicationStats(now) {
			s := replicationSample{backlog: st.ReplicationBacklog, delay: st.ReplicationDelayInSeconds,
				msgs: st.MsgOutCounter, bytes: st.BytesOutCounter, rate: st.MsgRateOut, tput: st.MsgThroughputOut}
			if st.Connected {
				s.connected = 1
			}
			if !perNS {
				c.emit(ch, s, c.b.cfg.ClusterName, t.name.Namespace.String(), t.fullName, remote)
				continue
			}
			k := key{t.name.Namespace.String(), remote}
			sum := sums[k]
			if sum == nil {
				sum = &replicationSample{}
				sums[k] = sum
				order = append(order, k)
			}
			sum.backlog += s.backlog
			sum.delay = max(sum.delay, s.delay)
			sum.connected += s.connected
			sum.msgs += s.msgs
			sum.bytes += s.bytes
			sum.rate += s.rate
			sum.tput += s.tput
		}
	}
	for _, k := range order {
		c.emit(ch, *sums[k], c.b.cfg.ClusterName, k.ns, k.remote)
	}
}

func (c *replicationCollector) emit(ch chan<- prometheus.Metric, s replicationSample, lv ...string) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	gauge(c.backlog, float64(s.backlog))
	gauge(c.rateOut, s.rate)
	gauge(c.throughputOut, s.tput)
	gauge(c.delay, float64(s.delay))
	gauge(c.connected, float64(s.connected))
	ch <- prometheus.MustNewConstMetric(c.msgsOut, prometheus.CounterValue, float64(s.msgs), lv...)
	ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(s.bytes), lv...)
}
