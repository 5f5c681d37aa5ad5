package main

import (
	"errors"
	"fmt"
	"math"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The broker's own share of publish latency comes from its histograms: two
// scrapes of /metrics, at the start and the end of the measured window, and
// the quantiles of the difference.
const (
	metricPublish = "mb_publish_latency_seconds" // SEND read to receipt queued
	metricFsync   = "mb_journal_fsync_seconds"   // one group commit's write + fdatasync
)

// histogram is the cumulative buckets of one Prometheus histogram.
type histogram struct {
	upper []float64 // bucket upper bounds in seconds, ascending, +Inf last
	count []float64 // cumulative counts
	sum   float64
}

// scrapeHistograms reads the named histograms from a /metrics URL.
func scrapeHistograms(url string, names ...string) (map[string]histogram, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	out := map[string]histogram{}
	for _, name := range names {
		mf := families[name]
		if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.Metric) != 1 {
			return nil, fmt.Errorf("%s: no single histogram %s", url, name)
		}
		h := mf.Metric[0].GetHistogram()
		var hg histogram
		for _, b := range h.GetBucket() {
			hg.upper = append(hg.upper, b.GetUpperBound())
			hg.count = append(hg.count, float64(b.GetCumulativeCount()))
		}
		hg.upper = append(hg.upper, math.Inf(1))
		hg.count = append(hg.count, float64(h.GetSampleCount()))
		hg.sum = h.GetSampleSum()
		out[name] = hg
	}
	return out, nil
}

// minus returns h - earlier: the observations between two scrapes.
func (h histogram) minus(earlier histogram) histogram {
	d := histogram{upper: h.upper, count: make([]float64, len(h.count)), sum: h.sum - earlier.sum}
	for i := range h.count {
		d.count[i] = h.count[i]
		if i < len(earlier.count) {
			d.count[i] -= earlier.count[i]
		}
	}
	return d
}

// quantile returns the q-quantile in ms, interpolated linearly inside its
// bucket as Prometheus's histogram_quantile does; -1 without observations.
func (h histogram) quantile(q float64) float64 {
	total := h.count[len(h.count)-1]
	if total == 0 {
		return -1
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, c := range h.count {
		if c >= rank {
			upper := h.upper[i]
			if math.IsInf(upper, 1) {
				return lower * 1e3 // beyond the last bound: report the bound
			}
			return (lower + (upper-lower)*(rank-below)/(c-below)) * 1e3
		}
		lower, below = h.upper[i], c
	}
	return -1
}

// brokerWindow scrapes at the start of a window and fills r at its end.
type brokerWindow struct {
	url    string
	before map[string]histogram
	err    error
}

func startBrokerWindow(url string) *brokerWindow {
	w := &brokerWindow{url: url}
	if url != "" {
		w.before, w.err = scrapeHistograms(url, metricPublish, metricFsync)
	}
	return w
}

// finish sets r's broker latency fields from the window's observations.
func (w *brokerWindow) finish(r *Result) {
	if w.url == "" {
		return
	}
	after, err := scrapeHistograms(w.url, metricPublish, metricFsync)
	if w.err != nil || err != nil {
		r.Notes = joinNotes(r.Notes, fmt.Sprintf("broker metrics unreadable: %v", errors.Join(w.err, err)))
		return
	}
	pub := after[metricPublish].minus(w.before[metricPublish])
	fs := after[metricFsync].minus(w.before[metricFsync])
	r.BrokerP50, r.BrokerP99, r.BrokerP999 = pub.quantile(0.5), pub.quantile(0.99), pub.quantile(0.999)
	r.FsyncP50, r.FsyncP99 = fs.quantile(0.5), fs.quantile(0.99)
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
