package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is one row of the summary table. Latencies are in milliseconds;
// negative values mean "not measured" and print as an en dash.
type Result struct {
	Scenario string  `json:"scenario"`
	System   string  `json:"system"`
	MsgPerS  float64 `json:"msg_per_s"`
	MBPerS   float64 `json:"mb_per_s"`
	PubP50   float64 `json:"pub_p50_ms"`
	PubP99   float64 `json:"pub_p99_ms"`
	PubP999  float64 `json:"pub_p999_ms"`
	E2EP50   float64 `json:"e2e_p50_ms"`
	E2EP99   float64 `json:"e2e_p99_ms"`
	// The broker's own publish latency (SEND read to receipt queued) and
	// its group commits' write + fdatasync, from its histograms.
	BrokerP50  float64 `json:"broker_pub_p50_ms"`
	BrokerP99  float64 `json:"broker_pub_p99_ms"`
	BrokerP999 float64 `json:"broker_pub_p999_ms"`
	FsyncP50   float64 `json:"fsync_p50_ms"`
	FsyncP99   float64 `json:"fsync_p99_ms"`
	CPU        float64 `json:"cpu_pct"`      // broker CPU, % of one core
	PeakRSS    float64 `json:"peak_rss_mib"` // broker VmHWM (fresh process per scenario)
	Errors     int64   `json:"errors"`
	Notes      string  `json:"notes,omitempty"`
}

func emptyResult(scenario, system string) Result {
	return Result{Scenario: scenario, System: system, PubP50: -1, PubP99: -1, PubP999: -1,
		E2EP50: -1, E2EP99: -1, BrokerP50: -1, BrokerP99: -1, BrokerP999: -1, FsyncP50: -1, FsyncP99: -1,
		CPU: -1, PeakRSS: -1}
}

// commonFlags are shared by the measuring subcommands.
type commonFlags struct {
	results  string
	scenario string
	system   string
	pid      int
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.results, "results", "", "append the result as a JSON line to this file")
	fs.StringVar(&c.scenario, "scenario", "", "scenario label for the results table")
	fs.StringVar(&c.system, "system", "MessageBus", "system label for the results table")
	fs.IntVar(&c.pid, "broker-pid", 0, "broker process id: report its CPU and RSS from /proc")
}

func (c *commonFlags) save(r Result) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	if c.results == "" {
		return
	}
	f, err := os.OpenFile(c.results, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		fatal(err)
	}
}

// procSample is a process's CPU time and memory at one instant.
type procSample struct {
	at     time.Time
	ticks  int64 // utime + stime in clock ticks
	rssKiB int64 // VmRSS
	hwmKiB int64 // VmHWM: peak RSS over the process's life
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	if pid <= 0 {
		return s, fmt.Errorf("no pid")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime is field 14, f[0] is field 3
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.ticks = ut + st
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &s.rssKiB
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &s.hwmKiB
		default:
			continue
		}
		if fs := strings.Fields(line); len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return s, nil
}

// cpuPct is the CPU used between two samples in % of one core.
func cpuPct(a, b procSample) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return -1
	}
	return float64(b.ticks-a.ticks) / clockTicks / wall * 100
}

// brokerStats fills CPU and peak RSS of r from two samples of pid; it leaves
// them unset when pid is 0 or unreadable.
func brokerStats(r *Result, a, b procSample, errA, errB error) {
	if errA != nil || errB != nil {
		return
	}
	r.CPU = cpuPct(a, b)
	r.PeakRSS = float64(b.hwmKiB) / 1024
}

// recorder keeps the most recent latency samples (up to 1M) for percentiles.
type recorder struct {
	mu sync.Mutex
	s  []float64
	n  int
}

const reservoir = 1 << 20

func newRecorder() *recorder { return &recorder{s: make([]float64, 0, 1024)} }

func (r *recorder) add(d time.Duration) {
	ms := float64(d.Nanoseconds()) / 1e6
	r.mu.Lock()
	r.n++
	if len(r.s) < reservoir {
		r.s = append(r.s, ms)
	} else {
		r.s[r.n%reservoir] = ms
	}
	r.mu.Unlock()
}

// q returns the p-quantile in ms, or -1 without samples.
func (r *recorder) q(p float64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.s) == 0 {
		return -1
	}
	slices.Sort(r.s)
	return r.s[int(math.Round(p*float64(len(r.s)-1)))]
}

func readResults(path string) []Result {
	f, err := os.Open(path)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fatal(fmt.Errorf("%s: %w", path, err))
		}
		out = append(out, r)
	}
	return out
}

// runTable prints the results file as a Markdown table.
func runTable(args []string) {
	if len(args) != 1 {
		fatal(fmt.Errorf("usage: mbbench table RESULTS"))
	}
	fmt.Println("| scenario | system | msg/s | MB/s | publish p50 / p99 / p99.9 ms | broker's share p50 / p99 / p99.9 ms | fsync p50 / p99 ms | e2e p50 / p99 ms | broker CPU % | peak RSS MiB | errors | notes |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, r := range readResults(args[0]) {
		fmt.Printf("| %s | %s | %s | %s | %s / %s / %s | %s / %s / %s | %s / %s | %s / %s | %s | %s | %d | %s |\n",
			r.Scenario, r.System, count(r.MsgPerS), num(r.MBPerS, 1),
			ms(r.PubP50), ms(r.PubP99), ms(r.PubP999),
			ms(r.BrokerP50), ms(r.BrokerP99), ms(r.BrokerP999), ms(r.FsyncP50), ms(r.FsyncP99),
			ms(r.E2EP50), ms(r.E2EP99), num(r.CPU, 0), num(r.PeakRSS, 0), r.Errors, r.Notes)
	}
}

// runGet prints field msg_per_s of the last result of a scenario and system.
func runGet(args []string) {
	if len(args) != 3 {
		fatal(fmt.Errorf("usage: mbbench get RESULTS SCENARIO SYSTEM"))
	}
	var v float64 = -1
	for _, r := range readResults(args[0]) {
		if r.Scenario == args[1] && r.System == args[2] {
			v = r.MsgPerS
		}
	}
	if v < 0 {
		fatal(fmt.Errorf("no result for %q / %q", args[1], args[2]))
	}
	fmt.Printf("%.0f\n", v)
}

func ms(v float64) string {
	switch {
	case v < 0:
		return "–"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func num(v float64, prec int) string {
	if v < 0 {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// count formats a rate with thousands separators.
func count(v float64) string {
	if v < 0 {
		return "–"
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
