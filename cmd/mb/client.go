package main

// Shared by `mb produce` and `mb consume`: the Pulsar client connection and
// the progress line of long runs.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/spf13/cobra"
)

const defaultServiceURL = "pulsar://localhost:6650"

// clientOptions are the connection flags of produce and consume.
type clientOptions struct {
	serviceURL string
	token      string
	tokenFile  string
	timeout    time.Duration

	progress         bool
	progressInterval time.Duration
}

func (o *clientOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.serviceURL, "service-url", "u", envOr("MB_SERVICE_URL", defaultServiceURL), "broker URL, pulsar:// or http:// (env MB_SERVICE_URL)")
	f.StringVar(&o.token, "auth-token", "", "authentication token (env MB_AUTH_TOKEN)")
	f.StringVar(&o.tokenFile, "auth-token-file", "", "file holding the authentication token")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up connecting, looking up or creating after this long")
	f.BoolVar(&o.progress, "progress", false, "print a progress line on stderr every few seconds (default: when stderr is a terminal)")
	f.DurationVar(&o.progressInterval, "progress-interval", 5*time.Second, "time between progress lines")
	f.MarkHidden("progress-interval")
}

// newClient connects quietly: failures reach the user as the command's
// error, so the client library's own log lines would only repeat them.
func (o *clientOptions) newClient() (pulsar.Client, error) {
	if o.token != "" && o.tokenFile != "" {
		return nil, errors.New("use either --auth-token or --auth-token-file, not both")
	}
	if o.token == "" && o.tokenFile == "" {
		o.token = os.Getenv("MB_AUTH_TOKEN") // not a flag default, which help would print
	}
	if o.timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	opts := pulsar.ClientOptions{
		URL:               o.serviceURL,
		ConnectionTimeout: min(o.timeout, 10*time.Second),
		OperationTimeout:  o.timeout,
		Logger:            plog.DefaultNopLogger(),
	}
	switch {
	case o.token != "":
		opts.Authentication = pulsar.NewAuthenticationToken(o.token)
	case o.tokenFile != "":
		opts.Authentication = pulsar.NewAuthenticationTokenFromFile(o.tokenFile)
	}
	c, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.serviceURL, err)
	}
	return c, nil
}

// progressEnabled: --progress decides when given, else whether stderr is a terminal.
func (o *clientOptions) progressEnabled(cmd *cobra.Command) bool {
	if cmd.Flags().Changed("progress") {
		return o.progress
	}
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress counts messages and, when enabled, prints the count and the
// recent rate every interval.
type progress struct {
	count atomic.Int64

	w        io.Writer
	verb     string
	interval time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startProgress(w io.Writer, enabled bool, interval time.Duration, verb string) *progress {
	p := &progress{w: w, verb: verb, interval: interval, stop: make(chan struct{})}
	if enabled && interval > 0 {
		p.wg.Add(1)
		go p.loop()
	}
	return p
}

func (p *progress) add(n int64) { p.count.Add(n) }

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			n := p.count.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			fmt.Fprintf(p.w, "%s %d messages (%.1f msg/s)\n", p.verb, n, rate)
			last, lastAt = n, now
		}
	}
}

// close stops the progress line and returns the final count.
func (p *progress) close() int64 {
	close(p.stop)
	p.wg.Wait()
	return p.count.Load()
}
