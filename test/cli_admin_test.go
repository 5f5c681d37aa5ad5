package test

// Tests of `mb admin` that run the built binary against a broker. Commands
// whose REST endpoints the server does not have yet skip themselves after
// probing the endpoint, so they start running as soon as it exists.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// cliResult is what a run of the mb binary printed and how it exited.
type cliResult struct {
	args   []string
	stdout string
	stderr string
	code   int
}

// runCLI runs the mb binary with stdin (may be empty) and waits at most a minute.
func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := cliCommand(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("mb %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("mb %s did not finish within a minute\nstderr: %s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// cliCommand is the mb binary ready to run. A race-enabled binary sleeps a
// second at exit by default; CLI tests run it hundreds of times.
func cliCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, mbBinary, args...)
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), "GORACE="+gorace)
	return cmd
}

// adminCLI runs `mb admin --admin-url <server> args...`.
func adminCLI(t *testing.T, s *server.Server, args ...string) cliResult {
	t.Helper()
	return runCLI(t, "", append([]string{"admin", "--admin-url", s.WebURL()}, args...)...)
}

// ok fails the test unless the command exited 0, and returns its stdout.
func (r cliResult) ok(t *testing.T) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("mb %s: exit %d\nstderr: %s", strings.Join(r.args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails checks a non-zero exit with `mb: <reason>` on stderr, the reason containing want.
func (r cliResult) fails(t *testing.T, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("mb %s succeeded, want failure %q\nstdout: %s", strings.Join(r.args, " "), want, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "mb: ") || !strings.Contains(r.stderr, want) {
		t.Fatalf("mb %s: stderr %q, want \"mb: ...%s...\"", strings.Join(r.args, " "), r.stderr, want)
	}
}

// jsonOf parses the command's stdout as JSON into v, which it zeroes first
// (Unmarshal would merge into maps left from an earlier call).
func (r cliResult) jsonOf(t *testing.T, v any) {
	t.Helper()
	reflect.ValueOf(v).Elem().SetZero()
	if err := json.Unmarshal([]byte(r.ok(t)), v); err != nil {
		t.Fatalf("mb %s: stdout is not JSON: %v\n%s", strings.Join(r.args, " "), err, r.stdout)
	}
}

// requireEndpoint skips the test while the server has no route for method
// and path. It asks with PATCH, which no admin endpoint uses, so nothing
// changes: the server's mux answers 404 when no route has the path, and 405
// with an Allow header naming the methods routed for it.
func requireEndpoint(t *testing.T, s *server.Server, method, path string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPatch, s.WebURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		t.Skipf("needs %s %s (the server has no route for the path)", method, path)
	case http.StatusMethodNotAllowed:
		var allowed []string
		for _, v := range resp.Header.Values("Allow") {
			for _, m := range strings.Split(v, ",") {
				allowed = append(allowed, strings.TrimSpace(m))
			}
		}
		if !slices.Contains(allowed, method) {
			t.Skipf("needs %s %s (the server routes only %v)", method, path, allowed)
		}
	}
}

// probeNS and probeTopic are paths to ask about routes with.
const (
	probeNS    = "/no-such-tenant/ns"
	probeTopic = "/persistent/no-such-tenant/ns/t"
)

func TestCLIAdminTenantsAndClustersList(t *testing.T) {
	s := startServer(t, server.Options{})
	out := adminCLI(t, s, "tenants", "list").ok(t)
	if !slices.Contains(strings.Fields(out), "public") {
		t.Fatalf("tenants list: %q", out)
	}
	var tenants []string
	adminCLI(t, s, "--output", "json", "tenants", "list").jsonOf(t, &tenants)
	if !slices.Contains(tenants, "public") {
		t.Fatalf("tenants list json: %v", tenants)
	}
	var tenant struct {
		AllowedClusters []string `json:"allowedClusters"`
	}
	adminCLI(t, s, "-o", "json", "tenants", "get", "public").jsonOf(t, &tenant)
	if !slices.Contains(tenant.AllowedClusters, "standalone") {
		t.Fatalf("tenants get json: %+v", tenant)
	}
	if out := adminCLI(t, s, "clusters", "list").ok(t); strings.TrimSpace(out) != "standalone" {
		t.Fatalf("clusters list: %q", out)
	}
	var cluster map[string]any
	adminCLI(t, s, "-o", "json", "clusters", "get", "standalone").jsonOf(t, &cluster)
	if cluster["serviceUrl"] == nil {
		t.Fatalf("clusters get json: %v", cluster)
	}
	adminCLI(t, s, "tenants", "get", "nobody").fails(t, "nobody")
}

func TestCLIAdminNamespacesCreateListPolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	adminCLI(t, s, "namespaces", "create", "public/cli").ok(t)
	out := adminCLI(t, s, "namespaces", "list", "public").ok(t)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); !slices.Equal(lines, []string{"public/cli", "public/default"}) {
		t.Fatalf("namespaces list (sorted, one per line): %q", out)
	}
	var list []string
	adminCLI(t, s, "namespaces", "list", "public", "--output", "json").jsonOf(t, &list)
	if !slices.Contains(list, "public/cli") {
		t.Fatalf("namespaces list json: %v", list)
	}
	var policies map[string]any
	adminCLI(t, s, "-o", "json", "namespaces", "policies", "public/cli").jsonOf(t, &policies)
	adminCLI(t, s, "namespaces", "policies", "public/cli").ok(t)

	adminCLI(t, s, "namespaces", "create", "public/cli").fails(t, "already exists")
	adminCLI(t, s, "namespaces", "create", "nobody/cli").fails(t, "tenant nobody does not exist")
	adminCLI(t, s, "namespaces", "policies", "public/missing").fails(t, "does not exist")
	adminCLI(t, s, "namespaces", "list", "nobody").fails(t, "does not exist")
}

func TestCLIAdminSetDeduplication(t *testing.T) {
	s := startServer(t, server.Options{})
	adminCLI(t, s, "namespaces", "create", "public/dedup").ok(t)
	adminCLI(t, s, "namespaces", "set-deduplication", "public/dedup", "--enable").ok(t)
	var p struct {
		Dedup *bool `json:"deduplicationEnabled"`
	}
	adminCLI(t, s, "-o", "json", "namespaces", "policies", "public/dedup").jsonOf(t, &p)
	if p.Dedup == nil || !*p.Dedup {
		t.Fatalf("deduplicationEnabled after --enable: %v", p.Dedup)
	}
	if out := adminCLI(t, s, "namespaces", "get-deduplication", "public/dedup").ok(t); out != "true\n" {
		t.Fatalf("get-deduplication: %q", out)
	}
	if out := adminCLI(t, s, "namespaces", "policies", "public/dedup").ok(t); !strings.Contains(out, "deduplicationEnabled") || !strings.Contains(out, "true") {
		t.Fatalf("policies table: %q", out)
	}
	adminCLI(t, s, "namespaces", "set-deduplication", "public/dedup", "-d").ok(t)
	if out := adminCLI(t, s, "namespaces", "get-deduplication", "public/dedup", "-o", "json").ok(t); out != "false\n" {
		t.Fatalf("get-deduplication after --disable: %q", out)
	}
	adminCLI(t, s, "namespaces", "set-deduplication", "public/nothere", "--enable").fails(t, "does not exist")
	// Exactly one of --enable and --disable.
	if r := adminCLI(t, s, "namespaces", "set-deduplication", "public/dedup"); r.code == 0 {
		t.Fatal("set-deduplication without --enable or --disable succeeded")
	}
}

func TestCLIAdminCreatePartitionedTopic(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := "persistent://public/default/cli-created"
	adminCLI(t, s, "topics", "create-partitioned-topic", topic, "-p", "4").ok(t)
	var md struct {
		Partitions int `json:"partitions"`
	}
	adminCLI(t, s, "-o", "json", "topics", "get-partitioned-topic-metadata", topic).jsonOf(t, &md)
	if md.Partitions != 4 {
		t.Fatalf("partitions after create: %d", md.Partitions)
	}
	adminCLI(t, s, "topics", "create-partitioned-topic", topic, "--partitions", "2").fails(t, "already exists")
	adminCLI(t, s, "topics", "create-partitioned-topic", "persistent://nobody/ns/x", "-p", "2").fails(t, "does not exist")
}

func TestCLIAdminUpdatePartitionedTopic(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := "persistent://public/default/cli-grown"
	// Created by hand so that this test does not depend on create's body format.
	if code, body := httpDo(t, "PUT", s.WebURL()+"/admin/v2/persistent/public/default/cli-grown/partitions", "2"); code != 204 {
		t.Fatalf("create: %d %s", code, body)
	}
	adminCLI(t, s, "topics", "update-partitioned-topic", topic, "-p", "5").ok(t)
	if out := adminCLI(t, s, "topics", "get-partitioned-topic-metadata", "public/default/cli-grown").ok(t); strings.Join(strings.Fields(out), " ") != "partitions 5" {
		t.Fatalf("metadata table: %q", out)
	}
	client := newClient(t, s.BrokerURL())
	if parts, err := client.TopicPartitions(topic); err != nil || len(parts) != 5 {
		t.Fatalf("client sees partitions %v %v", parts, err)
	}
	adminCLI(t, s, "topics", "update-partitioned-topic", topic, "-p", "3").fails(t, "only grow")
	adminCLI(t, s, "topics", "update-partitioned-topic", "public/default/never-created", "-p", "3").fails(t, "does not exist")
}

func TestCLIAdminTopicUnloadAndLookup(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	client := newClient(t, s.BrokerURL())
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	adminCLI(t, s, "topics", "unload", topic).ok(t)
	var lookup struct {
		BrokerURL string `json:"brokerUrl"`
	}
	adminCLI(t, s, "-o", "json", "topics", "lookup", topic).jsonOf(t, &lookup)
	if lookup.BrokerURL != s.BrokerURL() {
		t.Fatalf("lookup: %+v, want %s", lookup, s.BrokerURL())
	}
}

func TestCLIAdminErrors(t *testing.T) {
	s := startServer(t, server.Options{})
	// The server's reason, on stderr, with a non-zero exit.
	adminCLI(t, s, "namespaces", "create", "missing-tenant/ns").fails(t, "tenant missing-tenant does not exist")
	// Nothing listening.
	r := runCLI(t, "", "admin", "--admin-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "tenants", "list")
	r.fails(t, "connect")
	// Bad arguments never reach the server.
	adminCLI(t, s, "namespaces", "create", "no-slash").fails(t, "invalid namespace")
	adminCLI(t, s, "--output", "yaml", "tenants", "list").fails(t, "--output")
	adminCLI(t, s, "namespaces", "set-retention", "public/default", "--size", "10X", "--time", "1h").fails(t, "invalid size")
	// Usage errors exit non-zero too.
	if r := adminCLI(t, s, "tenants", "list", "extra-arg"); r.code == 0 {
		t.Fatal("extra argument accepted")
	}
	// MB_ADMIN_URL is the default --admin-url.
	cmd := cliCommand(context.Background(), "admin", "tenants", "list")
	cmd.Env = append(cmd.Env, "MB_ADMIN_URL="+s.WebURL())
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), "public") {
		t.Fatalf("MB_ADMIN_URL: %v %q", err, out)
	}
}

func TestCLIAdminAuthTokenAccepted(t *testing.T) {
	s := startServer(t, server.Options{})
	// The server ignores tokens today; they must not break anything.
	adminCLI(t, s, "--auth-token", "abc", "tenants", "list").ok(t)
}

// TestCLIAdminTenantsClusters: as pulsar-admin, `tenants create` without
// clusters (no flag, or an empty one) allows every cluster; the server's
// refusals (412) come back as the command's error.
func TestCLIAdminTenantsClusters(t *testing.T) {
	s := startServer(t, server.Options{})
	var td struct {
		AdminRoles      []string `json:"adminRoles"`
		AllowedClusters []string `json:"allowedClusters"`
	}
	for _, args := range [][]string{{"t-none"}, {"t-empty", "--allowed-clusters", ""}, {"t-short", "-c", "", "-r", "ops"}} {
		adminCLI(t, s, append([]string{"tenants", "create"}, args...)...).ok(t)
		adminCLI(t, s, "-o", "json", "tenants", "get", args[0]).jsonOf(t, &td)
		if !slices.Equal(td.AllowedClusters, []string{"standalone"}) {
			t.Fatalf("tenants create %v: allowed clusters %v, want every cluster [standalone]", args, td.AllowedClusters)
		}
	}
	adminCLI(t, s, "tenants", "create", "t-mars", "--allowed-clusters", "mars").fails(t, "Clusters do not exist")
	adminCLI(t, s, "tenants", "create", "t-space", "--admin-roles", " ops").fails(t, "AdminRoles contains whitespace")
	adminCLI(t, s, "tenants", "get", "t-mars").fails(t, "does not exist")
	// update keeps what is not given; an explicitly empty list is refused.
	adminCLI(t, s, "tenants", "update", "t-short", "--allowed-clusters", "").fails(t, "Clusters can not be empty")
	adminCLI(t, s, "tenants", "update", "t-short", "-c", "mars").fails(t, "Clusters do not exist")
	adminCLI(t, s, "-o", "json", "tenants", "get", "t-short").jsonOf(t, &td)
	if !slices.Equal(td.AdminRoles, []string{"ops"}) || !slices.Equal(td.AllowedClusters, []string{"standalone"}) {
		t.Fatalf("tenant after refused updates: %+v", td)
	}
}

func TestCLIAdminTenantsCreateUpdateDelete(t *testing.T) {
	s := startServer(t, server.Options{})
	requireEndpoint(t, s, "PUT", "/admin/v2/tenants/cli-probe")
	adminCLI(t, s, "tenants", "create", "acme", "--admin-roles", "alice,bob", "--allowed-clusters", "standalone").ok(t)
	adminCLI(t, s, "tenants", "create", "acme").fails(t, "")
	var td struct {
		AdminRoles      []string `json:"adminRoles"`
		AllowedClusters []string `json:"allowedClusters"`
	}
	adminCLI(t, s, "-o", "json", "tenants", "get", "acme").jsonOf(t, &td)
	if !slices.Equal(td.AdminRoles, []string{"alice", "bob"}) || !slices.Equal(td.AllowedClusters, []string{"standalone"}) {
		t.Fatalf("tenant after create: %+v", td)
	}
	if !slices.Contains(strings.Fields(adminCLI(t, s, "tenants", "list").ok(t)), "acme") {
		t.Fatal("tenants list lacks acme")
	}
	// Without --allowed-clusters, create allows all clusters.
	adminCLI(t, s, "tenants", "create", "beta").ok(t)
	adminCLI(t, s, "-o", "json", "tenants", "get", "beta").jsonOf(t, &td)
	if !slices.Equal(td.AllowedClusters, []string{"standalone"}) {
		t.Fatalf("default allowed clusters: %+v", td)
	}

	requireEndpoint(t, s, "POST", "/admin/v2/tenants/no-such-tenant")
	adminCLI(t, s, "tenants", "update", "acme", "-r", "carol").ok(t)
	adminCLI(t, s, "-o", "json", "tenants", "get", "acme").jsonOf(t, &td)
	if !slices.Equal(td.AdminRoles, []string{"carol"}) || !slices.Equal(td.AllowedClusters, []string{"standalone"}) {
		t.Fatalf("tenant after update (clusters kept): %+v", td)
	}

	requireEndpoint(t, s, "DELETE", "/admin/v2/tenants/no-such-tenant")
	adminCLI(t, s, "namespaces", "create", "acme/ns").ok(t)
	if r := adminCLI(t, s, "tenants", "delete", "acme"); r.code == 0 {
		t.Fatal("deleted a tenant that has namespaces")
	} else if !strings.HasPrefix(r.stderr, "mb: ") {
		t.Fatalf("stderr %q", r.stderr)
	}
	requireEndpoint(t, s, "DELETE", "/admin/v2/namespaces"+probeNS)
	adminCLI(t, s, "namespaces", "delete", "acme/ns").ok(t)
	adminCLI(t, s, "tenants", "delete", "acme").ok(t)
	adminCLI(t, s, "tenants", "get", "acme").fails(t, "acme")
	adminCLI(t, s, "tenants", "delete", "acme").fails(t, "acme")
}

func TestCLIAdminNamespacePolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	ns := "public/pol"
	adminCLI(t, s, "namespaces", "create", ns).ok(t)
	policies := func(t *testing.T) map[string]json.RawMessage {
		var p map[string]json.RawMessage
		adminCLI(t, s, "-o", "json", "namespaces", "policies", ns).jsonOf(t, &p)
		return p
	}

	t.Run("retention", func(t *testing.T) {
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/retention")
		adminCLI(t, s, "namespaces", "set-retention", ns, "--size", "10M", "--time", "1h").ok(t)
		var r struct {
			Minutes int `json:"retentionTimeInMinutes"`
			MB      int `json:"retentionSizeInMB"`
		}
		if err := json.Unmarshal(policies(t)["retention_policies"], &r); err != nil || r.Minutes != 60 || r.MB != 10 {
			t.Fatalf("retention_policies: %+v %v", r, err)
		}
		requireEndpoint(t, s, "GET", "/admin/v2/namespaces"+probeNS+"/retention")
		adminCLI(t, s, "-o", "json", "namespaces", "get-retention", ns).jsonOf(t, &r)
		if r.Minutes != 60 || r.MB != 10 {
			t.Fatalf("get-retention: %+v", r)
		}
		adminCLI(t, s, "namespaces", "set-retention", ns, "-s", "-1", "-t", "-1").ok(t)
		adminCLI(t, s, "-o", "json", "namespaces", "get-retention", ns).jsonOf(t, &r)
		if r.Minutes != -1 || r.MB != -1 {
			t.Fatalf("infinite retention: %+v", r)
		}
	})

	t.Run("message-ttl", func(t *testing.T) {
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/messageTTL")
		adminCLI(t, s, "namespaces", "set-message-ttl", ns, "--ttl", "1h").ok(t)
		if got := strings.TrimSpace(string(policies(t)["message_ttl_in_seconds"])); got != "3600" {
			t.Fatalf("message_ttl_in_seconds: %s", got)
		}
		// pulsar-admin's spelling works too.
		adminCLI(t, s, "namespaces", "set-message-ttl", ns, "--messageTTL", "120").ok(t)
		requireEndpoint(t, s, "GET", "/admin/v2/namespaces"+probeNS+"/messageTTL")
		if out := adminCLI(t, s, "namespaces", "get-message-ttl", ns).ok(t); strings.TrimSpace(out) != "120" {
			t.Fatalf("get-message-ttl: %q", out)
		}
	})

	t.Run("backlog-quota", func(t *testing.T) {
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/backlogQuota")
		adminCLI(t, s, "namespaces", "set-backlog-quota", ns, "--limit", "10M", "--policy", "producer_request_hold").ok(t)
		var m map[string]struct {
			LimitSize int64  `json:"limitSize"`
			Policy    string `json:"policy"`
		}
		if err := json.Unmarshal(policies(t)["backlog_quota_map"], &m); err != nil || m["destination_storage"].LimitSize != 10<<20 || m["destination_storage"].Policy != "producer_request_hold" {
			t.Fatalf("backlog_quota_map: %+v %v", m, err)
		}
		requireEndpoint(t, s, "GET", "/admin/v2/namespaces"+probeNS+"/backlogQuotaMap")
		adminCLI(t, s, "-o", "json", "namespaces", "get-backlog-quotas", ns).jsonOf(t, &m)
		if m["destination_storage"].LimitSize != 10<<20 {
			t.Fatalf("get-backlog-quotas: %+v", m)
		}
		out := adminCLI(t, s, "namespaces", "get-backlog-quotas", ns).ok(t)
		if !strings.Contains(out, "destination_storage") || !strings.Contains(out, "10485760") {
			t.Fatalf("get-backlog-quotas table: %q", out)
		}
		adminCLI(t, s, "namespaces", "set-backlog-quota", ns, "--limit", "1M", "--policy", "evict").fails(t, "invalid --policy")
	})

	t.Run("permissions", func(t *testing.T) {
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/permissions/probe-role")
		adminCLI(t, s, "namespaces", "grant-permission", ns, "--role", "app", "--actions", "produce,consume").ok(t)
		requireEndpoint(t, s, "GET", "/admin/v2/namespaces"+probeNS+"/permissions")
		var perms map[string][]string
		adminCLI(t, s, "-o", "json", "namespaces", "permissions", ns).jsonOf(t, &perms)
		got := slices.Sorted(slices.Values(perms["app"]))
		if !slices.Equal(got, []string{"consume", "produce"}) {
			t.Fatalf("permissions: %v", perms)
		}
		if out := adminCLI(t, s, "namespaces", "permissions", ns).ok(t); !strings.Contains(out, "app") || !strings.Contains(out, "consume,produce") {
			t.Fatalf("permissions table: %q", out)
		}
		requireEndpoint(t, s, "DELETE", "/admin/v2/namespaces"+probeNS+"/permissions/probe-role")
		adminCLI(t, s, "namespaces", "revoke-permission", ns, "--role", "app").ok(t)
		adminCLI(t, s, "-o", "json", "namespaces", "permissions", ns).jsonOf(t, &perms)
		if len(perms["app"]) != 0 {
			t.Fatalf("permissions after revoke: %v", perms)
		}
	})

	t.Run("auto-topic-creation", func(t *testing.T) {
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/autoTopicCreation")
		adminCLI(t, s, "namespaces", "set-auto-topic-creation", ns, "--enable", "--type", "partitioned", "--num-partitions", "3").ok(t)
		var o struct {
			Allow      bool   `json:"allowAutoTopicCreation"`
			Type       string `json:"topicType"`
			Partitions int    `json:"defaultNumPartitions"`
		}
		if err := json.Unmarshal(policies(t)["autoTopicCreationOverride"], &o); err != nil || !o.Allow || o.Type != "partitioned" || o.Partitions != 3 {
			t.Fatalf("autoTopicCreationOverride: %+v %v", o, err)
		}
		requireEndpoint(t, s, "DELETE", "/admin/v2/namespaces"+probeNS+"/autoTopicCreation")
		adminCLI(t, s, "namespaces", "remove-auto-topic-creation", ns).ok(t)
		if raw, ok := policies(t)["autoTopicCreationOverride"]; ok && string(raw) != "null" {
			t.Fatalf("override after remove: %s", raw)
		}
	})

	t.Run("max-producers-and-consumers", func(t *testing.T) {
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/maxProducersPerTopic")
		adminCLI(t, s, "namespaces", "set-max-producers-per-topic", ns, "-p", "7").ok(t)
		if got := strings.TrimSpace(string(policies(t)["max_producers_per_topic"])); got != "7" {
			t.Fatalf("max_producers_per_topic: %s", got)
		}
		requireEndpoint(t, s, "POST", "/admin/v2/namespaces"+probeNS+"/maxConsumersPerTopic")
		adminCLI(t, s, "namespaces", "set-max-consumers-per-topic", ns, "-c", "9").ok(t)
		if got := strings.TrimSpace(string(policies(t)["max_consumers_per_topic"])); got != "9" {
			t.Fatalf("max_consumers_per_topic: %s", got)
		}
	})

	t.Run("topics-and-delete", func(t *testing.T) {
		requireEndpoint(t, s, "GET", "/admin/v2/namespaces"+probeNS+"/topics")
		client := newClient(t, s.BrokerURL())
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://" + ns + "/t1"})
		if err != nil {
			t.Fatal(err)
		}
		out := adminCLI(t, s, "namespaces", "topics", ns).ok(t)
		if !strings.Contains(out, "persistent://"+ns+"/t1") {
			t.Fatalf("namespaces topics: %q", out)
		}
		requireEndpoint(t, s, "DELETE", "/admin/v2/namespaces"+probeNS)
		p.Close()
		if r := adminCLI(t, s, "namespaces", "delete", ns); r.code == 0 {
			t.Fatal("deleted a namespace that has topics")
		}
		adminCLI(t, s, "namespaces", "delete", ns, "--force").ok(t)
		adminCLI(t, s, "namespaces", "policies", ns).fails(t, "does not exist")
	})
}

func TestCLIAdminTopics(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := "persistent://public/default/cli-topic"
	client := newClient(t, s.BrokerURL())

	t.Run("create-list-delete", func(t *testing.T) {
		requireEndpoint(t, s, "PUT", "/admin/v2"+probeTopic)
		adminCLI(t, s, "topics", "create", topic).ok(t)
		// pulsaradmin lists persistent and non-persistent, partitioned and not.
		for _, domain := range []string{"persistent", "non-persistent"} {
			requireEndpoint(t, s, "GET", "/admin/v2/"+domain+probeNS)
			requireEndpoint(t, s, "GET", "/admin/v2/"+domain+probeNS+"/partitioned")
		}
		if code, body := httpDo(t, "PUT", s.WebURL()+"/admin/v2/persistent/public/default/cli-parts/partitions", "2"); code != 204 {
			t.Fatalf("create partitioned: %d %s", code, body)
		}
		out := adminCLI(t, s, "topics", "list", "public/default").ok(t)
		if !strings.Contains(out, topic) || !strings.Contains(out, "persistent://public/default/cli-parts") || !strings.Contains(out, "partitioned") {
			t.Fatalf("topics list: %q", out)
		}
		var names []string
		adminCLI(t, s, "-o", "json", "topics", "list", "public/default").jsonOf(t, &names)
		if !slices.Contains(names, topic) {
			t.Fatalf("topics list json: %v", names)
		}
		requireEndpoint(t, s, "DELETE", "/admin/v2"+probeTopic)
		adminCLI(t, s, "topics", "delete", topic).ok(t)
		requireEndpoint(t, s, "DELETE", "/admin/v2"+probeTopic+"/partitions")
		adminCLI(t, s, "topics", "delete-partitioned-topic", "public/default/cli-parts").ok(t)
		adminCLI(t, s, "-o", "json", "topics", "list", "public/default").jsonOf(t, &names)
		if slices.Contains(names, topic) || slices.Contains(names, "persistent://public/default/cli-parts") {
			t.Fatalf("topics after delete: %v", names)
		}
	})

	t.Run("stats-and-message-ids", func(t *testing.T) {
		requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/stats")
		topic := uniqueTopic(t)
		sub, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "cli-sub"})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "one", "-m", "two", "-m", "three", "--disable-batching").ok(t)
		var st struct {
			MsgInCounter  int64 `json:"msgInCounter"`
			Subscriptions map[string]struct {
				MsgBacklog int64 `json:"msgBacklog"`
			} `json:"subscriptions"`
		}
		adminCLI(t, s, "-o", "json", "topics", "stats", topic).jsonOf(t, &st)
		if st.MsgInCounter != 3 || st.Subscriptions["cli-sub"].MsgBacklog != 3 {
			t.Fatalf("stats: %+v", st)
		}
		if out := adminCLI(t, s, "topics", "stats", topic).ok(t); !strings.Contains(out, "subscriptions.cli-sub.msgBacklog") {
			t.Fatalf("stats table: %q", out)
		}

		requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/internalStats")
		var internal map[string]any
		adminCLI(t, s, "-o", "json", "topics", "internal-stats", topic).jsonOf(t, &internal)
		if _, ok := internal["entriesAddedCounter"]; !ok {
			t.Fatalf("internal-stats: %v", internal)
		}

		requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/lastMessageId")
		last := strings.TrimSpace(adminCLI(t, s, "topics", "last-message-id", topic).ok(t))
		var id struct {
			LedgerID int64 `json:"ledgerId"`
			EntryID  int64 `json:"entryId"`
		}
		adminCLI(t, s, "-o", "json", "topics", "last-message-id", topic).jsonOf(t, &id)
		if !strings.HasPrefix(last, fmt.Sprintf("%d:%d:", id.LedgerID, id.EntryID)) || id.EntryID < 2 {
			t.Fatalf("last-message-id %q vs json %+v", last, id)
		}

		requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/ledger/0/entry/0")
		out := adminCLI(t, s, "topics", "get-message-by-id", topic, "-l", fmt.Sprint(id.LedgerID), "-e", fmt.Sprint(id.EntryID)).ok(t)
		if !strings.Contains(out, "three") {
			t.Fatalf("get-message-by-id %d:%d: %q", id.LedgerID, id.EntryID, out)
		}

		requireEndpoint(t, s, "POST", "/admin/v2"+probeTopic+"/terminate")
		adminCLI(t, s, "topics", "terminate", topic).ok(t)
		r := runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "late", "--timeout", "10s")
		if r.code == 0 {
			t.Fatal("produced to a terminated topic")
		}
	})

	t.Run("partitioned-stats", func(t *testing.T) {
		requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/partitioned-stats")
		if code, body := httpDo(t, "PUT", s.WebURL()+"/admin/v2/persistent/public/default/cli-pstats/partitions", "2"); code != 204 {
			t.Fatalf("create partitioned: %d %s", code, body)
		}
		var st map[string]any
		adminCLI(t, s, "-o", "json", "topics", "partitioned-stats", "public/default/cli-pstats", "--per-partition").jsonOf(t, &st)
		if _, ok := st["metadata"]; !ok {
			t.Fatalf("partitioned-stats: %v", st)
		}
	})

	t.Run("missing-topic", func(t *testing.T) {
		requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/stats")
		adminCLI(t, s, "topics", "stats", "public/default/never-used").fails(t, "")
	})
}

func TestCLIAdminSubscriptions(t *testing.T) {
	s := startServer(t, server.Options{})
	requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/stats") // to observe the backlog
	topic := uniqueTopic(t)
	runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", "warm-up").ok(t) // creates the topic
	backlog := func(t *testing.T, sub string) int64 {
		t.Helper()
		var st struct {
			Subscriptions map[string]struct {
				MsgBacklog int64 `json:"msgBacklog"`
			} `json:"subscriptions"`
		}
		adminCLI(t, s, "-o", "json", "topics", "stats", topic).jsonOf(t, &st)
		b, ok := st.Subscriptions[sub]
		if !ok {
			t.Fatalf("no subscription %s in stats: %+v", sub, st)
		}
		return b.MsgBacklog
	}

	requireEndpoint(t, s, "PUT", "/admin/v2"+probeTopic+"/subscription/probe")
	adminCLI(t, s, "subscriptions", "create", topic, "-s", "from-start", "--message-id", "earliest").ok(t)
	adminCLI(t, s, "subscriptions", "create", topic, "-s", "from-now").ok(t)
	for i := 0; i < 10; i++ {
		runCLI(t, "", "produce", topic, "--service-url", s.BrokerURL(), "-m", fmt.Sprint("m", i)).ok(t)
	}
	if b := backlog(t, "from-start"); b != 11 {
		t.Fatalf("backlog from earliest: %d, want 11", b)
	}
	if b := backlog(t, "from-now"); b != 10 {
		t.Fatalf("backlog from latest: %d, want 10", b)
	}

	requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/subscriptions")
	if out := adminCLI(t, s, "subscriptions", "list", topic).ok(t); out != "from-now\nfrom-start\n" {
		t.Fatalf("subscriptions list: %q", out)
	}

	requireEndpoint(t, s, "GET", "/admin/v2"+probeTopic+"/subscription/probe/position/1")
	out := adminCLI(t, s, "subscriptions", "peek", topic, "-s", "from-now", "-n", "2").ok(t)
	if !strings.Contains(out, "m0") || !strings.Contains(out, "m1") || strings.Contains(out, "m2") {
		t.Fatalf("peek: %q", out)
	}
	var peeked []struct {
		Payload string `json:"payload"`
	}
	adminCLI(t, s, "-o", "json", "subscriptions", "peek", topic, "-s", "from-now", "-n", "2").jsonOf(t, &peeked)
	if len(peeked) != 2 || peeked[0].Payload != "m0" || peeked[1].Payload != "m1" {
		t.Fatalf("peek json: %+v", peeked)
	}
	if b := backlog(t, "from-now"); b != 10 {
		t.Fatalf("peek consumed: backlog %d", b)
	}

	requireEndpoint(t, s, "POST", "/admin/v2"+probeTopic+"/subscription/probe/skip/1")
	adminCLI(t, s, "subscriptions", "skip", topic, "-s", "from-now", "-n", "3").ok(t)
	if b := backlog(t, "from-now"); b != 7 {
		t.Fatalf("backlog after skip 3: %d, want 7", b)
	}

	requireEndpoint(t, s, "POST", "/admin/v2"+probeTopic+"/subscription/probe/skip_all")
	adminCLI(t, s, "subscriptions", "clear-backlog", topic, "-s", "from-now").ok(t)
	if b := backlog(t, "from-now"); b != 0 {
		t.Fatalf("backlog after clear-backlog: %d", b)
	}

	requireEndpoint(t, s, "POST", "/admin/v2"+probeTopic+"/subscription/probe/resetcursor/0")
	adminCLI(t, s, "subscriptions", "reset-cursor", topic, "-s", "from-now", "--time", "1h").ok(t)
	if b := backlog(t, "from-now"); b != 11 {
		t.Fatalf("backlog after reset-cursor an hour back: %d, want 11", b)
	}

	requireEndpoint(t, s, "POST", "/admin/v2"+probeTopic+"/subscription/probe/expireMessages/1")
	time.Sleep(1100 * time.Millisecond) // messages must be older than the expiry
	adminCLI(t, s, "subscriptions", "expire", topic, "-s", "from-start", "--expire-time", "1").ok(t)
	if b := backlog(t, "from-start"); b != 0 {
		t.Fatalf("backlog after expire: %d", b)
	}

	requireEndpoint(t, s, "DELETE", "/admin/v2"+probeTopic+"/subscription/probe")
	adminCLI(t, s, "subscriptions", "delete", topic, "-s", "from-start").ok(t)
	adminCLI(t, s, "subscriptions", "delete", topic, "-s", "from-start").fails(t, "")
	if out := adminCLI(t, s, "subscriptions", "list", topic).ok(t); out != "from-now\n" {
		t.Fatalf("subscriptions after delete: %q", out)
	}
}
