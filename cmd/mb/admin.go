package main

// `mb admin`: pulsar-admin's sub-commands, talking to the admin REST API
// through the official pulsaradmin client.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/auth"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/spf13/cobra"
)

const defaultAdminURL = "http://localhost:8080"

// adminOptions are the flags shared by every `mb admin` command.
type adminOptions struct {
	url       string
	output    string
	token     string
	tokenFile string
	timeout   time.Duration
	tls       tlsOptions
}

func newAdminCommand() *cobra.Command {
	o := &adminOptions{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage clusters, tenants, namespaces, topics, subscriptions and schemas (like pulsar-admin)",
		Long: `Manage the bus through its admin REST API, with pulsar-admin's sub-commands
and arguments. On failure the command exits non-zero and prints the server's
reason.

--output table (default) prints names one per line and objects as aligned
KEY VALUE rows in a stable order; --output json prints the server's JSON.`,
		Args: cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.validate()
		},
	}
	o.register(cmd)
	cmd.AddCommand(
		newClustersCommand(o),
		newTenantsCommand(o),
		newNamespacesCommand(o),
		newTopicsCommand(o),
		newSubscriptionsCommand(o),
		newSchemasCommand(o),
		newBrokersCommand(o),
	)
	return cmd
}

// register adds the flags shared by every admin command (mb admin, mb
// functions) to cmd.
func (o *adminOptions) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "admin-url", envOr("MB_ADMIN_URL", defaultAdminURL), "admin REST API URL (env MB_ADMIN_URL)")
	pf.StringVarP(&o.output, "output", "o", outputTable, "output format: table or json")
	pf.StringVar(&o.token, "auth-token", "", "bearer token sent with every request (env MB_AUTH_TOKEN)")
	pf.StringVar(&o.tokenFile, "auth-token-file", "", "file holding the bearer token (env MB_AUTH_TOKEN_FILE)")
	pf.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up on a request after this long")
	o.tls.register(pf)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (o *adminOptions) validate() error {
	if err := tokenFromEnv(&o.token, &o.tokenFile); err != nil {
		return err
	}
	if o.output != outputTable && o.output != outputJSON {
		return fmt.Errorf("invalid --output %q: want table or json", o.output)
	}
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid --admin-url %q: want http://host:port", o.url)
	}
	if o.timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	return o.tls.check(o.url, "--admin-url", "https://", "https")
}

// adminClient is a connected pulsaradmin client plus what the commands need
// around it: the raw answers (for --output json) and an output printer.
type adminClient struct {
	api pulsaradmin.Client
	// rest reaches the few endpoints pulsaradmin has no call for (force
	// deletes, namespace deduplication status), with the same auth.
	rest *rest.Client
	rec  *recorder
	out  *printer
}

// connect builds the pulsaradmin client. The token goes through
// pulsaradmin's own auth provider, so it is sent as "Authorization: Bearer".
// The TLS transport is built here rather than by pulsaradmin, which would
// drop the token when a client certificate is set and ignore an unreadable
// trust file.
func (o *adminOptions) connect(w io.Writer) (*adminClient, error) {
	cfg := &config.Config{
		WebServiceURL:              strings.TrimRight(o.url, "/"),
		Token:                      o.token,
		TokenFile:                  o.tokenFile,
		TLSTrustCertsFilePath:      o.tls.trustCertsFile,
		TLSAllowInsecureConnection: o.tls.allowInsecure,
		TLSCertFile:                o.tls.certFile,
		TLSKeyFile:                 o.tls.keyFile,
	}
	tlsConfig, err := o.tls.config()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 10
	transport.TLSClientConfig = tlsConfig
	var provider auth.Provider
	switch {
	case o.token != "":
		provider, err = auth.NewAuthenticationToken(o.token, transport)
	case o.tokenFile != "":
		provider, err = auth.NewAuthenticationTokenFromFile(o.tokenFile, transport)
	default:
		provider = auth.NewDefaultProvider(transport)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	rec := &recorder{next: provider.Transport()}
	provider.WithTransport(rec)
	api, err := admin.NewPulsarClientWithAuthProvider(cfg, provider)
	if err != nil {
		return nil, err
	}
	return &adminClient{
		api: api,
		rest: &rest.Client{
			ServiceURL:  cfg.WebServiceURL,
			VersionInfo: admin.ReleaseVersion,
			HTTPClient:  &http.Client{Timeout: o.timeout, Transport: provider},
		},
		rec: rec,
		out: &printer{w: w, json: o.output == outputJSON},
	}, nil
}

// run adapts an admin action to cobra: it connects, bounds the action by
// --timeout and turns the server's error answer into its reason.
func (o *adminOptions) run(fn func(ctx context.Context, c *adminClient, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := o.connect(cmd.OutOrStdout())
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
		defer cancel()
		return c.explain(fn(ctx, c, args))
	}
}

// last is the body of the latest successful answer, for --output json.
func (c *adminClient) last() []byte { return c.rec.lastBody() }

// explain replaces pulsaradmin's "code: 404 reason: ..." by the server's
// reason alone, or says which request the server does not support.
func (c *adminClient) explain(err error) error {
	var re rest.Error
	if err == nil || !errors.As(err, &re) {
		return err
	}
	failed := c.rec.lastFailure()
	if (re.Code == http.StatusNotFound || re.Code == http.StatusMethodNotAllowed) && !hasJSONReason(failed.body) && failed.method != "" {
		return fmt.Errorf("%s %s: not supported by the server (HTTP %d)", failed.method, failed.path, re.Code)
	}
	reason := strings.TrimSpace(re.Reason)
	if reason == "" {
		reason = fmt.Sprintf("HTTP %d %s", re.Code, http.StatusText(re.Code))
	}
	return errors.New(reason)
}

func hasJSONReason(body []byte) bool {
	var e struct {
		Reason *string `json:"reason"`
	}
	return json.Unmarshal(body, &e) == nil && e.Reason != nil
}

// exchange is one request and its answer as seen on the wire.
type exchange struct {
	method, path string
	status       int
	body         []byte
}

// recorder is an http.RoundTripper that keeps the last answers: pulsaradmin
// decodes bodies into its own structs, while --output json must print what
// the server sent. Admin answers are small, so bodies are read whole.
type recorder struct {
	next http.RoundTripper

	mu      sync.Mutex
	ok      exchange // latest 2xx
	failure exchange // latest non-2xx
}

// RoundTrip implements http.RoundTripper.
func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	ex := exchange{method: req.Method, path: req.URL.Path, status: resp.StatusCode, body: body}
	r.mu.Lock()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		r.ok = ex
	} else {
		r.failure = ex
	}
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) lastBody() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok.body
}

func (r *recorder) lastFailure() exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failure
}

// restPath builds an /admin/v2 path from already-validated name parts.
func restPath(parts ...string) string {
	escaped := make([]string, len(parts))
	for i, p := range parts {
		escaped[i] = url.PathEscape(p)
	}
	return "/admin/v2/" + strings.Join(escaped, "/")
}
