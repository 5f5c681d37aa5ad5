package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/server"
)

// TestCLIAdminTopicPolicies runs `mb admin topics` policy commands, named
// as pulsar-admin's, against a broker.
func TestCLIAdminTopicPolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	ns := fmt.Sprintf("public/cli%d", time.Now().UnixNano())
	adminCLI(t, s, "namespaces", "create", ns).ok(t)
	adminCLI(t, s, "namespaces", "set-message-ttl", ns, "--ttl", "60").ok(t)
	topic := "persistent://" + ns + "/pol"
	adminCLI(t, s, "topics", "create", topic).ok(t)
	line := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(adminCLI(t, s, append([]string{"topics"}, args...)...).ok(t))
	}

	if got := line("get-message-ttl", topic); got != "null" {
		t.Fatalf("unset TTL: %q", got)
	}
	if got := line("get-message-ttl", topic, "--applied"); got != "60" {
		t.Fatalf("applied TTL from the namespace: %q", got)
	}
	line("set-message-ttl", topic, "--ttl", "2m")
	if got := line("get-message-ttl", topic); got != "120" {
		t.Fatalf("TTL: %q", got)
	}
	line("remove-message-ttl", topic)
	if got := line("get-message-ttl", topic); got != "null" {
		t.Fatalf("removed TTL: %q", got)
	}

	line("set-retention", topic, "-s", "10M", "-t", "1h")
	var rp struct{ RetentionTimeInMinutes, RetentionSizeInMB int }
	adminCLI(t, s, "-o", "json", "topics", "get-retention", topic).jsonOf(t, &rp)
	if rp.RetentionTimeInMinutes != 60 || rp.RetentionSizeInMB != 10 {
		t.Fatalf("retention: %+v", rp)
	}
	line("remove-retention", topic)

	line("set-backlog-quota", topic, "-l", "1M", "-p", "producer_exception")
	if got := line("get-backlog-quotas", topic); !strings.Contains(got, "destination_storage") ||
		!strings.Contains(got, "1048576") || !strings.Contains(got, "producer_exception") {
		t.Fatalf("backlog quotas: %q", got)
	}
	line("remove-backlog-quota", topic)
	if got := line("get-backlog-quotas", topic); strings.Contains(got, "producer_exception") {
		t.Fatalf("backlog quotas after remove: %q", got)
	}

	line("set-max-producers", topic, "-p", "3")
	line("set-max-consumers", topic, "-c", "4")
	line("set-max-consumers-per-subscription", topic, "--max-consumers-per-subscription", "5")
	for cmd, want := range map[string]string{"get-max-producers": "3", "get-max-consumers": "4", "get-max-consumers-per-subscription": "5"} {
		if got := line(cmd, topic); got != want {
			t.Fatalf("%s: %q, want %s", cmd, got, want)
		}
	}
	line("remove-max-producers", topic)
	if got := line("get-max-producers", topic, "--applied"); got != "0" {
		t.Fatalf("applied max producers after remove: %q", got)
	}

	line("set-deduplication", topic, "--enable")
	if got := line("get-deduplication", topic); got != "true" {
		t.Fatalf("deduplication: %q", got)
	}
	line("remove-deduplication", topic)
	if got := line("get-deduplication", topic); got != "null" {
		t.Fatalf("removed deduplication: %q", got)
	}

	// Failures exit non-zero with the server's reason, or a usage error.
	adminCLI(t, s, "topics", "set-message-ttl", "persistent://"+ns+"/missing", "--ttl", "10").fails(t, "does not exist")
	adminCLI(t, s, "topics", "set-max-producers", topic, "-p", "-1").fails(t, "--max-producers must be 0")
	adminCLI(t, s, "topics", "set-retention", topic, "-s", "0", "-t", "1h").fails(t, "retention")
}

func TestCLIAdminPartitionedTerminateAndInternalStats(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := uniqueTopic(t)
	adminCLI(t, s, "topics", "create-partitioned-topic", topic, "-p", "2").ok(t)
	var st struct {
		Metadata   struct{ Partitions int }
		Partitions map[string]any
	}
	adminCLI(t, s, "-o", "json", "topics", "partitioned-stats-internal", topic).jsonOf(t, &st)
	if st.Metadata.Partitions != 2 || len(st.Partitions) != 2 {
		t.Fatalf("partitioned internal stats: %+v", st)
	}
	var ids map[string]struct{ EntryID int64 }
	adminCLI(t, s, "-o", "json", "topics", "partitioned-terminate", topic).jsonOf(t, &ids)
	if len(ids) != 2 || ids["0"].EntryID != -1 {
		t.Fatalf("partitioned-terminate: %+v", ids)
	}
	adminCLI(t, s, "topics", "partitioned-terminate", uniqueTopic(t)).fails(t, "does not exist")
}
