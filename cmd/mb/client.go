package main

// Shared by `mb produce` and `mb consume`: the Pulsar client connection and
// the progress line of long runs.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const defaultServiceURL = "pulsar://localhost:6650"

// clientOptions are the connection flags of produce and consume.
type clientOptions struct {
	serviceURL string
	token      string
	tokenFile  string
	timeout    time.Duration
	tls        tlsOptions

	progress         bool
	progressInterval time.Duration
}

func (o *clientOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.serviceURL, "service-url", "u", envOr("MB_SERVICE_URL", defaultServiceURL), "broker URL, pulsar:// or http:// (env MB_SERVICE_URL)")
	f.StringVar(&o.token, "auth-token", "", "authentication token (env MB_AUTH_TOKEN)")
	f.StringVar(&o.tokenFile, "auth-token-file", "", "file holding the authentication token (env MB_AUTH_TOKEN_FILE)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up connecting, looking up or creating after this long")
	f.BoolVar(&o.progress, "progress", false, "print a progress line on stderr every few seconds (default: when stderr is a terminal)")
	f.DurationVar(&o.progressInterval, "progress-interval", 5*time.Second, "time between progress lines")
	f.MarkHidden("progress-interval")
	o.tls.register(f)
}

// tokenFromEnv applies the rules of --auth-token and --auth-token-file,
// shared by every client command: not both; when neither is given,
// MB_AUTH_TOKEN, else MB_AUTH_TOKEN_FILE (as mb access login exports). The
// variables are not flag defaults, which help would print.
func tokenFromEnv(token, tokenFile *string) error {
	if *token != "" && *tokenFile != "" {
		return errors.New("use either --auth-token or --auth-token-file, not both")
	}
	if *token == "" && *tokenFile == "" {
		*token = os.Getenv("MB_AUTH_TOKEN")
		if *token == "" {
			*tokenFile = os.Getenv("MB_AUTH_TOKEN_FILE")
		}
	}
	return nil
}

// newClient connects quietly: failures reach the user as the command's
// error, so the client library's own log lines would only repeat them.
func (o *clientOptions) newClient() (pulsar.Client, error) {
	opts, err := o.pulsarOptions()
	if err != nil {
		return nil, err
	}
	c, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.serviceURL, err)
	}
	return c, nil
}

// pulsarOptions turns the flags into the client's options.
func (o *clientOptions) pulsarOptions() (pulsar.ClientOptions, error) {
	if err := tokenFromEnv(&o.token, &o.tokenFile); err != nil {
		return pulsar.ClientOptions{}, err
	}
	if o.timeout <= 0 {
		return pulsar.ClientOptions{}, errors.New("--timeout must be positive")
	}
	if err := o.tls.check(o.serviceURL, "--service-url", "pulsar+ssl://", "pulsar+ssl", "https"); err != nil {
		return pulsar.ClientOptions{}, err
	}
	opts := pulsar.ClientOptions{
		URL:                        o.serviceURL,
		ConnectionTimeout:          min(o.timeout, 10*time.Second),
		OperationTimeout:           o.timeout,
		Logger:                     plog.DefaultNopLogger(),
		TLSTrustCertsFilePath:      o.tls.trustCertsFile,
		TLSAllowInsecureConnection: o.tls.allowInsecure,
	}
	switch {
	case o.token != "":
		opts.Authentication = pulsar.NewAuthenticationToken(o.token)
	case o.tokenFile != "":
		opts.Authentication = pulsar.NewAuthenticationTokenFromFile(o.tokenFile)
	case o.tls.certFile != "":
		// Alone, the client certificate is the credential: Pulsar's "tls"
		// auth method, whose role is the certificate's common name.
		opts.Authentication = pulsar.NewAuthenticationTLS(o.tls.certFile, o.tls.keyFile)
	}
	if o.tls.certFile != "" && (o.token != "" || o.tokenFile != "") {
		// With a token the certificate is only presented on the connection
		// (mutual TLS); the token names the role.
		opts.TLSCertificateFile = o.tls.certFile
		opts.TLSKeyFilePath = o.tls.keyFile
	}
	return opts, nil
}

// tlsOptions are the client TLS flags of produce, consume and admin. Their
// environment variables are MB_CLIENT_TLS_*: MB_TLS_* configure the
// broker's own certificate in `mb standalone`, which a client must never
// pick up as its identity.
type tlsOptions struct {
	trustCertsFile string
	certFile       string
	keyFile        string
	allowInsecure  bool
	flags          *pflag.FlagSet
}

func (t *tlsOptions) register(f *pflag.FlagSet) {
	t.flags = f
	f.StringVar(&t.trustCertsFile, "tls-trust-certs-file", envOr("MB_CLIENT_TLS_TRUST_CERTS_FILE", ""), "CA certificates (PEM) the server's certificate is checked against; default the system's (env MB_CLIENT_TLS_TRUST_CERTS_FILE)")
	f.StringVar(&t.certFile, "tls-cert-file", envOr("MB_CLIENT_TLS_CERT_FILE", ""), "client certificate (PEM) for mutual TLS (env MB_CLIENT_TLS_CERT_FILE)")
	f.StringVar(&t.keyFile, "tls-key-file", envOr("MB_CLIENT_TLS_KEY_FILE", ""), "private key (PEM) of --tls-cert-file (env MB_CLIENT_TLS_KEY_FILE)")
	insecure, _ := strconv.ParseBool(os.Getenv("MB_CLIENT_TLS_ALLOW_INSECURE"))
	f.BoolVar(&t.allowInsecure, "tls-allow-insecure", insecure, "accept any server certificate: for tests only (env MB_CLIENT_TLS_ALLOW_INSECURE)")
}

// check validates the options against the URL they will be used with. A
// TLS flag given on the command line for a plain-text URL is an error: the
// client would silently ignore it. Values from the environment are
// ignored there, so one shell can reach TLS and plain brokers.
func (t *tlsOptions) check(rawURL, urlFlag, want string, tlsSchemes ...string) error {
	if (t.certFile == "") != (t.keyFile == "") {
		return errors.New("give both --tls-cert-file and --tls-key-file, or neither")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid %s %q", urlFlag, rawURL)
	}
	isTLS := false
	for _, s := range tlsSchemes {
		isTLS = isTLS || u.Scheme == s
	}
	if !isTLS && t.flags != nil {
		for _, name := range []string{"tls-trust-certs-file", "tls-cert-file", "tls-key-file", "tls-allow-insecure"} {
			if t.flags.Changed(name) {
				return fmt.Errorf("--%s needs a TLS %s (%s...), not %q", name, urlFlag, want, rawURL)
			}
		}
	}
	if !isTLS {
		return nil
	}
	// Load the files now: the client libraries report a bad file only as
	// a failed connection, after the whole timeout.
	_, err = t.config()
	return err
}

// config is the TLS client configuration the flags describe.
func (t *tlsOptions) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.allowInsecure}
	if t.trustCertsFile != "" {
		pemCerts, err := os.ReadFile(t.trustCertsFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-trust-certs-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pemCerts) {
			return nil, fmt.Errorf("--tls-trust-certs-file %s: no PEM certificates in it", t.trustCertsFile)
		}
	}
	if t.certFile != "" {
		cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
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
