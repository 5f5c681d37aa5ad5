package test

import (
	"slices"
	"strings"
	"testing"

	"github.com/messagebus/messagebus/server"
)

// TestCLITopicPermissions: mb admin topics grant-permission, permissions and
// revoke-permission (pulsar-admin's topic grants) reach the topic's
// permissions endpoints.
func TestCLITopicPermissions(t *testing.T) {
	s := startServer(t, server.Options{})
	topic := "persistent://public/default/cli-topic-perms"
	adminCLI(t, s, "topics", "create", topic).ok(t)
	adminCLI(t, s, "topics", "grant-permission", topic, "--role", "app", "--actions", "produce,consume").ok(t)
	var perms map[string][]string
	adminCLI(t, s, "-o", "json", "topics", "permissions", topic).jsonOf(t, &perms)
	if got := slices.Sorted(slices.Values(perms["app"])); !slices.Equal(got, []string{"consume", "produce"}) {
		t.Fatalf("permissions: %v", perms)
	}
	if out := adminCLI(t, s, "topics", "permissions", topic).ok(t); !strings.Contains(out, "app") || !strings.Contains(out, "consume,produce") {
		t.Fatalf("permissions table: %q", out)
	}
	adminCLI(t, s, "topics", "revoke-permission", topic, "--role", "app").ok(t)
	adminCLI(t, s, "-o", "json", "topics", "permissions", topic).jsonOf(t, &perms)
	if len(perms["app"]) != 0 {
		t.Fatalf("permissions after revoke: %v", perms)
	}
	adminCLI(t, s, "topics", "grant-permission", topic, "--role", "app", "--actions", "write").fails(t, "invalid action")
}
