package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/messagebus/messagebus/internal/testutil/oidcprovider"
)

// consoleDir holds the browser script and its npm package (playwright-core).
const consoleDir = "testdata/console"

// chromiumPath is Debian's Chromium, or MB_CHROMIUM.
func chromiumPath() string {
	if p := os.Getenv("MB_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestConsoleInBrowser drives the web console in headless Chromium against a
// real `mb standalone`: token login, browsing to a topic while a producer
// runs, peeking a JSON message, changing a retention policy, the audit log,
// a refused action for a non-admin token, and OIDC login (authorization code
// with PKCE) through a real OpenID provider. Screenshots go to
// MB_CONSOLE_SCREENSHOTS (docs/console when refreshing the README's).
func TestConsoleInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath()); err != nil {
		if os.Getenv("MB_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("Chromium not found at %s and MB_REQUIRE_CHROMIUM is set", chromiumPath())
		}
		t.Skipf("Chromium not found at %s (apt-get install -y chromium, or set MB_CHROMIUM); CI installs it", chromiumPath())
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found on PATH: the console test needs Node.js 20+ (make testdeps)")
	}
	if _, err := os.Stat(filepath.Join(consoleDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core missing in test/%s: run `make testdeps` (npm ci --prefix test/%s)", consoleDir, consoleDir)
	}
	keyFile, key := secretKey(t)
	idp := oidcprovider.Start(t) // the console's OIDC login goes through it
	p := startProc(t, t.TempDir(), 0, 0,
		"--auth-token-secret-key", keyFile, "--superuser-roles", "admin",
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--oidc-issuers", idp.Issuer, "--oidc-client-id", "mb-cli")
	adminTok := signToken(t, key, "admin", time.Time{})
	viewerTok := signToken(t, key, "viewer", time.Time{})

	// An audit entry to find: a tenant created on the access plane, which
	// the provider's alice (group new_team_eng) administers after login.
	expectAuthHTTP(t, adminTok, "POST", p.webURL+"/access/v1/CreateTenant", `{"tenant":"console-team","groups":["new_team_eng"]}`, 200)

	topic := uniqueTopic(t)
	client := tokenClient(t, p.brokerURL, adminTok)
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "console-sub"})
	if err != nil {
		t.Fatal(err)
	}
	cons.Close() // the subscription stays, with the backlog the page peeks
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a steady producer, so the page sees a rate
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			body, _ := json.Marshal(map[string]any{"console": "hello", "n": i})
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			prod.Send(sctx, &pulsar.ProducerMessage{Payload: body, Key: "k", Properties: map[string]string{"source": "console-test"}})
			scancel()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	batchTopic, batchFrom := compressedBatches(t, client, uniqueTopic(t)+"-batches")

	shots := os.Getenv("MB_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if !filepath.IsAbs(shots) {
		shots = filepath.Join("..", shots) // relative to the repository root
	}
	runCtx, runCancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer runCancel()
	cmd := exec.CommandContext(runCtx, "node", "console.mjs")
	cmd.Dir = consoleDir
	cmd.Env = append(os.Environ(), "MB_WEB_URL="+p.webURL, "MB_ADMIN_TOKEN="+adminTok, "MB_VIEWER_TOKEN="+viewerTok,
		"MB_TOPIC="+topic, "MB_SUB=console-sub", "MB_OIDC_TENANT=console-team", "MB_OIDC_USER=alice",
		"MB_BATCH_TOPIC="+batchTopic, "MB_BATCH_FROM="+batchFrom.UTC().Format(time.RFC3339Nano), "MB_SHOTS="+absPath(t, shots), "MB_CHROMIUM="+chromiumPath())
	out, err := cmd.CombinedOutput()
	t.Logf("browser script:\n%s", out)
	if err != nil {
		t.Fatalf("browser script: %v", err)
	}

	// What the page did reached the server.
	got := expectAuthHTTP(t, adminTok, "GET", p.webURL+"/admin/v2/namespaces/public/default/retention", "", 200)
	var ret struct {
		Minutes int `json:"retentionTimeInMinutes"`
		MB      int `json:"retentionSizeInMB"`
	}
	if err := json.Unmarshal([]byte(got), &ret); err != nil || ret.Minutes != 120 || ret.MB != 64 {
		t.Fatalf("retention after the page's change: %s (%v)", got, err)
	}
	// The tenant the page created, with no association left after its removal.
	got = expectAuthHTTP(t, adminTok, "POST", p.webURL+"/access/v1/ListRoles", `{"tenant":"edit-team"}`, 200)
	if strings.Contains(got, "billing") {
		t.Fatalf("association still there after the page removed it: %s", got)
	}
	// The viewer's delete was refused: the topic is still there.
	expectAuthHTTP(t, adminTok, "GET", p.webURL+"/admin/v2/"+strings.Replace(topic, "://", "/", 1)+"/stats", "", 200)
}

// expectAuthHTTP sends body (JSON, may be empty) with tok and wants code.
func expectAuthHTTP(t *testing.T, tok, method, url, body string, code int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Fatalf("%s %s: HTTP %d %s, want %d", method, url, resp.StatusCode, b, code)
	}
	return string(b)
}

func absPath(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// compressedBatches publishes one message, then (strictly later, to the
// millisecond) one batch of three messages per codec the Go client has
// (LZ4, ZLIB, ZSTD; Snappy is covered by the admin API's unit test). It
// returns the topic and a time between the first message and the batches.
func compressedBatches(t *testing.T, client pulsar.Client, topic string) (string, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(`{"before":true}`)}); err != nil {
		t.Fatal(err)
	}
	// Publish times are in milliseconds: the batches must come at least one
	// millisecond after the first message's receipt.
	from := time.Now().Add(time.Millisecond).Truncate(time.Millisecond)
	for time.Now().Before(from.Add(time.Millisecond)) {
		time.Sleep(100 * time.Microsecond) // at most 2 ms: publish times have no finer grain
	}
	for _, codec := range []struct {
		name string
		c    pulsar.CompressionType
	}{{"LZ4", pulsar.LZ4}, {"ZLIB", pulsar.ZLib}, {"ZSTD", pulsar.ZSTD}} {
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: codec.c,
			BatchingMaxPublishDelay: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			body, _ := json.Marshal(map[string]any{"codec": codec.name, "i": i})
			p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: body, Key: fmt.Sprintf("%s-%d", codec.name, i)},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						t.Error(err)
					}
					wg.Done()
				})
		}
		if err := p.FlushWithCtx(ctx); err != nil { // the three as one batch, now
			t.Fatal(err)
		}
		wg.Wait()
		p.Close()
	}
	return topic, from
}
