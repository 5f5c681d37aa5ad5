package oidcprovider

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/testutil/syncbuf"
)

// ShortLivedTTL is how long access tokens of the "workload-short" client live.
const ShortLivedTTL = 2 * time.Second

// startTimeout bounds how long Start waits for node to answer discovery; a
// cold start takes well under a second, but a 2-core machine busy with the
// -race suite has taken over 30 s (seen in CI runs).
const startTimeout = 60 * time.Second

// audiencePrefix must match AUDIENCE_PREFIX in provider.mjs.
const audiencePrefix = "urn:messagebus-test:audience:"

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the issuer URL, http://127.0.0.1:<port>, with no trailing slash.
	Issuer string

	tokenURL string
	client   *http.Client
	out      *syncbuf.Buffer
}

// Start starts a provider and stops it when the test ends. It fails the test
// if node or the npm packages are missing, or if the provider does not come up.
func Start(t testing.TB) *Provider {
	t.Helper()
	return start(t, startAttempts)
}

// startAttempts: a node that has not announced its issuer in startTimeout
// is killed and started once more (in CI runs a start very rarely hung
// for the whole timeout while the next one came up at once).
const startAttempts = 2

func start(t testing.TB, attempts int) *Provider {
	t.Helper()
	dir := packageDir()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("oidcprovider: node not found on PATH (install Node.js 20+, e.g. apt-get install -y nodejs npm, then run `npm ci --prefix internal/testutil/oidcprovider`)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		t.Fatalf("oidcprovider: npm packages missing in %s; run `npm ci --prefix internal/testutil/oidcprovider` from the repository root", dir)
	}

	out := &syncbuf.Buffer{}
	cmd := exec.Command(node, "provider.mjs")
	cmd.Dir = dir
	cmd.Stderr = out
	// The provider exits when its stdin closes: if this test binary dies
	// without running cleanups, node does not outlive it.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("oidcprovider: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("oidcprovider: %v", err)
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("oidcprovider: start node: %v", err)
	}
	exited := make(chan struct{})
	var stdoutDone sync.WaitGroup
	stdoutDone.Add(1)

	issuerLine := make(chan string, 1)
	go func() {
		defer stdoutDone.Done()
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err == nil {
			issuerLine <- line
		}
		close(issuerLine)
		_, _ = io.Copy(out, r)
	}()
	go func() {
		stdoutDone.Wait()
		_ = cmd.Wait()
		close(exited)
	}()

	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("oidcprovider output:\n%s", out.String())
		}
	})

	fail := func(format string, args ...any) {
		t.Helper()
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("oidcprovider: "+format+"\nnode output:\n%s", append(args, out.String())...)
	}

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	var line string
	select {
	case l, ok := <-issuerLine:
		if !ok {
			fail("node exited before announcing its issuer")
		}
		line = l
	case <-deadline.C:
		if attempts > 1 {
			_ = cmd.Process.Kill()
			<-exited
			t.Logf("oidcprovider: node did not announce its issuer within %v; starting it again; its output:\n%s", startTimeout, out.String())
			return start(t, attempts-1)
		}
		fail("node did not announce its issuer within %v", startTimeout)
	}
	var hello struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Issuer == "" {
		fail("unexpected first line from provider.mjs: %q", line)
	}

	p := &Provider{Issuer: hello.Issuer, out: out, client: &http.Client{Timeout: 10 * time.Second}}
	disc, err := p.awaitDiscovery(deadline.C, exited)
	if err != nil {
		fail("%v", err)
	}
	p.tokenURL = disc.TokenEndpoint
	t.Logf("oidcprovider: %s ready in %v", p.Issuer, time.Since(started).Round(time.Millisecond))
	return p
}

type discovery struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
}

// awaitDiscovery polls the discovery document until it answers: the issuer
// line is printed once node listens, discovery proves the app serves.
func (p *Provider) awaitDiscovery(deadline <-chan time.Time, exited <-chan struct{}) (discovery, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		d, err := p.discover()
		if err == nil {
			return d, nil
		}
		last = err
		select {
		case <-tick.C:
		case <-exited:
			return discovery{}, fmt.Errorf("node exited while waiting for discovery: %v", last)
		case <-deadline:
			return discovery{}, fmt.Errorf("discovery did not answer within %v: %v", startTimeout, last)
		}
	}
}

func (p *Provider) discover() (discovery, error) {
	resp, err := p.client.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		return discovery{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return discovery{}, fmt.Errorf("discovery: HTTP %d", resp.StatusCode)
	}
	var d discovery
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return discovery{}, fmt.Errorf("discovery: %w", err)
	}
	if d.Issuer != p.Issuer || d.TokenEndpoint == "" {
		return discovery{}, fmt.Errorf("discovery: unexpected document (issuer %q)", d.Issuer)
	}
	return d, nil
}

// Output returns what node wrote so far (warnings, server errors).
func (p *Provider) Output() string { return p.out.String() }

// ClientCredentialsToken returns an access token (RS256 JWT, sub = clientID,
// aud = audience) from the client_credentials grant.
func (p *Provider) ClientCredentialsToken(ctx context.Context, clientID, secret, audience string) (string, error) {
	form := url.Values{
		"grant_type": {"client_credentials"},
		"resource":   {resourceIndicator(audience)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := p.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("client_credentials for %s: %w", clientID, err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken      string `json:"access_token"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("client_credentials for %s: HTTP %d: %w", clientID, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("client_credentials for %s: HTTP %d: %s: %s", clientID, resp.StatusCode, body.Error, body.ErrorDescription)
	}
	return body.AccessToken, nil
}

// ShortLivedToken returns a client_credentials access token of the
// "workload-short" client, valid for ShortLivedTTL.
func (p *Provider) ShortLivedToken(ctx context.Context, audience string) (string, error) {
	return p.ClientCredentialsToken(ctx, "workload-short", "secret-short", audience)
}

// resourceIndicator maps an audience to the absolute URI RFC 8707 requires;
// provider.mjs maps it back for the token's aud.
func resourceIndicator(audience string) string {
	if u, err := url.Parse(audience); err == nil && u.Scheme != "" {
		return audience
	}
	return audiencePrefix + audience
}

func packageDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("oidcprovider: cannot locate package directory")
	}
	return filepath.Dir(file)
}
