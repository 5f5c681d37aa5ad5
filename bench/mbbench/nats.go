package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// natsRunner runs the nats CLI against one server.
type natsRunner struct {
	bin, url string
}

func (n natsRunner) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.bin, append([]string{"-s", n.url}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nats %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// addStream creates a file-backed stream large enough that nothing is
// discarded during a run.
func (n natsRunner) addStream(name, subject string) {
	if _, err := n.run(context.Background(), "stream", "add", name, "--subjects", subject, "--storage", "file",
		"--max-bytes=-1", "--defaults"); err != nil {
		fatal(err)
	}
}

// pub runs `nats bench js pub async` of msgs messages on an existing stream.
func (n natsRunner) pub(ctx context.Context, stream, subject string, msgs, size int) (string, error) {
	return n.run(ctx, "bench", "js", "pub", "async", subject, "--stream", stream, "--msgs", strconv.Itoa(msgs),
		"--size", fmt.Sprintf("%dB", size), "--no-progress")
}

// ordered runs `nats bench js ordered` until msgs messages are consumed.
func (n natsRunner) ordered(ctx context.Context, stream string, msgs int) (string, error) {
	return n.run(ctx, "bench", "js", "ordered", "--stream", stream, "--msgs", strconv.Itoa(msgs), "--no-progress")
}

var (
	natsRate = regexp.MustCompile(`stats: ([\d,]+) msgs/sec`)
	natsP50  = regexp.MustCompile(`P50: ([\d,.]+)us`)
	natsP99  = regexp.MustCompile(`P99: ([\d,.]+)us`)
	natsP999 = regexp.MustCompile(`P99\.9: ([\d,.]+)us`)
)

// natsNumber extracts re's first group as a number (or -1).
func natsNumber(re *regexp.Regexp, out string) float64 {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(m[1], ",", ""), 64)
	if err != nil {
		return -1
	}
	return v
}

// runNATS measures JetStream with the nats CLI: a short calibration publish
// sizes the measured run to about --duration, then `nats bench js pub async`
// runs alone or with `nats bench js ordered` tailing the same stream. The
// backlog modes write --backlog-write messages to stream "backlog", or read
// --backlog-read of them back. nats bench reports publish latency per async
// batch of 500 messages and no end-to-end latency.
func runNATS(args []string) {
	fs := flag.NewFlagSet("nats", flag.ExitOnError)
	var cf commonFlags
	cf.register(fs)
	bin := fs.String("nats-bin", "nats", "nats CLI binary")
	url := fs.String("url", "nats://127.0.0.1:4222", "server URL")
	size := fs.Int("size", 128, "message size in bytes")
	dur := fs.Duration("duration", 20*time.Second, "target duration of the measured run")
	consume := fs.Bool("consume", false, "run an ordered consumer tailing the stream")
	bWrite := fs.Int("backlog-write", 0, "write this many messages to stream backlog")
	bRead := fs.Int("backlog-read", 0, "consume this many messages from stream backlog")
	notes := fs.String("notes", "", "notes for the results table")
	fs.Parse(args)
	n := natsRunner{bin: *bin, url: *url}
	ctx, cancel := context.WithTimeout(context.Background(), 4**dur+5*time.Minute)
	defer cancel()
	r := emptyResult(cf.scenario, cf.system)
	r.Notes = *notes

	switch {
	case *bWrite > 0:
		n.addStream("backlog", "backlog.x")
		start := time.Now()
		out, err := n.pub(ctx, "backlog", "backlog.x", *bWrite, *size)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("wrote %d messages of %d B in %.1f s (nats: %.0f msg/s)\n", *bWrite, *size,
			time.Since(start).Seconds(), natsNumber(natsRate, out))
		return
	case *bRead > 0:
		before, errA := sampleProc(cf.pid)
		out, err := n.ordered(ctx, "backlog", *bRead)
		after, errB := sampleProc(cf.pid)
		if err != nil {
			fatal(err)
		}
		r.MsgPerS = natsNumber(natsRate, out)
		r.MBPerS = r.MsgPerS * float64(*size) / 1e6
		brokerStats(&r, before, after, errA, errB)
		cf.save(r)
		return
	}

	// Calibrate: about one second's worth, doubling as warm-up.
	n.addStream("cal", "cal.x")
	out, err := n.pub(ctx, "cal", "cal.x", 20000, *size)
	if err != nil {
		fatal(err)
	}
	msgs := int(natsNumber(natsRate, out) * dur.Seconds())
	msgs = max(msgs, 10000)

	n.addStream("run", "run.x")
	before, errA := sampleProc(cf.pid)
	type res struct {
		out string
		err error
	}
	cons := make(chan res, 1)
	if *consume {
		go func() {
			out, err := n.ordered(ctx, "run", msgs)
			cons <- res{out, err}
		}()
		time.Sleep(300 * time.Millisecond) // let the consumer attach before the first message
	}
	out, err = n.pub(ctx, "run", "run.x", msgs, *size)
	if err != nil {
		fatal(err)
	}
	var cout string
	if *consume {
		c := <-cons
		if c.err != nil {
			r.Errors++
			fmt.Fprintln(os.Stderr, "mbbench:", c.err)
		}
		cout = c.out
	}
	after, errB := sampleProc(cf.pid)
	r.MsgPerS = natsNumber(natsRate, out)
	r.MBPerS = r.MsgPerS * float64(*size) / 1e6
	r.PubP50, r.PubP99, r.PubP999 = natsNumber(natsP50, out)/1000, natsNumber(natsP99, out)/1000, natsNumber(natsP999, out)/1000
	if r.PubP50 < 0 {
		r.PubP50, r.PubP99, r.PubP999 = -1, -1, -1
	}
	note := fmt.Sprintf("%d msgs; latency per async batch of 500", msgs)
	if *consume {
		note += fmt.Sprintf("; consumed %s msg/s", count(natsNumber(natsRate, cout)))
	}
	if r.Notes != "" {
		note = r.Notes + "; " + note
	}
	r.Notes = note
	brokerStats(&r, before, after, errA, errB)
	cf.save(r)
}
