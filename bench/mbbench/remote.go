package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// remoteWindow measures, over the produce window, what a second broker
// stored (geo-replication: what reached cluster b, with or without a
// consumer there) and the CPU of that broker and of this process, so that a
// replicated run can be read against the machine's budget.
type remoteWindow struct {
	url, errs    string
	pid          int
	in0          float64
	remote, self procSample
	remoteErr    error
}

const metricIn = "pulsar_in_messages_total"

// scrapeCounter sums every series of a counter (or gauge) at a /metrics URL.
func scrapeCounter(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", url, err)
	}
	mf := families[name]
	if mf == nil {
		return 0, nil // no topic has taken a message yet
	}
	sum := 0.0
	for _, m := range mf.Metric {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, nil
}

func startRemoteWindow(url string, pid int) *remoteWindow {
	w := &remoteWindow{url: url, pid: pid}
	if url != "" {
		var err error
		if w.in0, err = scrapeCounter(url, metricIn); err != nil {
			w.errs = err.Error()
		}
	}
	if pid > 0 {
		w.remote, w.remoteErr = sampleProc(pid)
	}
	w.self, _ = sampleProc(os.Getpid())
	return w
}

// finish adds to r's notes: the remote's stored msg/s, its CPU and ours.
func (w *remoteWindow) finish(r *Result, elapsed float64) {
	if w.url != "" {
		in1, err := scrapeCounter(w.url, metricIn)
		switch {
		case w.errs != "" || err != nil:
			r.Notes = joinNotes(r.Notes, fmt.Sprintf("remote metrics unreadable: %s %v", w.errs, err))
		default:
			r.Notes = joinNotes(r.Notes, fmt.Sprintf("remote stored %s msg/s", count((in1-w.in0)/elapsed)))
		}
	}
	if w.pid > 0 && w.remoteErr == nil {
		if after, err := sampleProc(w.pid); err == nil {
			r.Notes = joinNotes(r.Notes, fmt.Sprintf("remote broker CPU %.0f%%", cpuPct(w.remote, after)))
		}
	}
	if after, err := sampleProc(os.Getpid()); err == nil {
		r.Notes = joinNotes(r.Notes, fmt.Sprintf("client CPU %.0f%%", cpuPct(w.self, after)))
	}
}
