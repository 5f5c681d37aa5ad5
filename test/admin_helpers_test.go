package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// newAdmin returns the official Go admin client for a test server.
func newAdmin(t *testing.T, s *server.Server) pulsaradmin.Client {
	t.Helper()
	c, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: s.WebURL()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expectStatus asserts that a pulsaradmin call failed with the HTTP status
// code and a reason.
func expectStatus(t *testing.T, err error, code int, what string) {
	t.Helper()
	var re rest.Error
	if !errors.As(err, &re) {
		t.Fatalf("%s: want HTTP %d, got %v", what, code, err)
	}
	if re.Code != code || re.Reason == "" || strings.HasPrefix(re.Reason, fmt.Sprint(code)) {
		t.Fatalf("%s: want HTTP %d with a reason, got %d %q", what, code, re.Code, re.Reason)
	}
}

// expectHTTP sends a raw request and asserts the status and, for errors,
// Pulsar's {"reason": ...} body.
func expectHTTP(t *testing.T, method, url, body string, code int) string {
	t.Helper()
	got, resp := httpDo(t, method, url, body)
	if got != code {
		t.Fatalf("%s %s %q: HTTP %d %s, want %d", method, url, body, got, resp, code)
	}
	if code >= 400 {
		var e struct{ Reason string }
		if err := json.Unmarshal([]byte(resp), &e); err != nil || e.Reason == "" {
			t.Fatalf("%s %s: error body %q has no reason", method, url, resp)
		}
	}
	return resp
}

func topicName(t *testing.T, name string) utils.TopicName {
	t.Helper()
	tn, err := utils.GetTopicName(name)
	if err != nil {
		t.Fatal(err)
	}
	return *tn
}

func nsName(t *testing.T, name string) utils.NameSpaceName {
	t.Helper()
	n, err := utils.GetNamespaceName(name)
	if err != nil {
		t.Fatal(err)
	}
	return *n
}

// newNamespace creates a fresh namespace in the public tenant.
func newNamespace(t *testing.T, admin pulsaradmin.Client) string {
	t.Helper()
	ns := fmt.Sprintf("public/ns%d", time.Now().UnixNano())
	if err := admin.Namespaces().CreateNamespace(ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// restTopic is the /admin/v2 path of a full topic name.
func restTopic(webURL, topic string) string {
	return webURL + "/admin/v2/" + strings.Replace(topic, "://", "/", 1)
}

// adminEventually polls cond: the broker's state is only observable from
// outside by asking.
func adminEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
