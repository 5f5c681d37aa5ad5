package test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// The clusters API as Pulsar's: register, read, update, delete, and the
// replication clusters of namespaces and topics checked against it.
func TestGeoClustersAPI(t *testing.T) {
	s := startServer(t, server.Options{ClusterName: "east"})
	admin := newAdmin(t, s)
	base := s.WebURL() + "/admin/v2/clusters/"

	cs, err := admin.Clusters().List()
	if err != nil || len(cs) != 1 || cs[0] != "east" {
		t.Fatalf("clusters: %v %v, want [east]", cs, err)
	}
	west := utils.ClusterData{Name: "west", ServiceURL: "http://127.0.0.1:18080", BrokerServiceURL: "pulsar://127.0.0.1:16650",
		AuthenticationPlugin: "token", AuthenticationParameters: "token:abc"}
	if err := admin.Clusters().Create(west); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, admin.Clusters().Create(west), http.StatusConflict, "create twice")
	got, err := admin.Clusters().Get("west")
	if err != nil || got.BrokerServiceURL != west.BrokerServiceURL || got.AuthenticationParameters != "token:abc" {
		t.Fatalf("get west: %+v %v", got, err)
	}
	west.BrokerServiceURL = "pulsar://127.0.0.1:26650"
	if err := admin.Clusters().Update(west); err != nil {
		t.Fatal(err)
	}
	if got, _ := admin.Clusters().Get("west"); got.BrokerServiceURL != west.BrokerServiceURL {
		t.Fatalf("update not applied: %+v", got)
	}
	expectStatus(t, admin.Clusters().Update(utils.ClusterData{Name: "north", ServiceURL: "http://x:1"}), http.StatusNotFound, "update unknown")
	expectHTTP(t, "PUT", base+"bad", `{"brokerServiceUrl":"http://x:1"}`, http.StatusPreconditionFailed)
	expectHTTP(t, "PUT", base+"bad", `{}`, http.StatusPreconditionFailed)
	expectHTTP(t, "PUT", base+"bad", `not json`, http.StatusBadRequest)
	expectHTTP(t, "GET", base+"north", "", http.StatusNotFound)

	// Replication clusters must be registered and allowed by the tenant.
	ns := newNamespace(t, admin)
	expectStatus(t, admin.Namespaces().SetNamespaceReplicationClusters(ns, []string{"east", "nowhere"}), http.StatusPreconditionFailed, "unknown cluster")
	expectStatus(t, admin.Namespaces().SetNamespaceReplicationClusters(ns, []string{"east", "west"}), http.StatusForbidden, "cluster not allowed")
	if err := admin.Tenants().Update(utils.TenantData{Name: "public", AdminRoles: []string{}, AllowedClusters: []string{"east", "west"}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().SetNamespaceReplicationClusters(ns, []string{"east", "west"}); err != nil {
		t.Fatal(err)
	}
	if got, err := admin.Namespaces().GetNamespaceReplicationClusters(ns); err != nil || strings.Join(got, ",") != "east,west" {
		t.Fatalf("replication clusters: %v %v", got, err)
	}
	// A cluster in use cannot be deleted; nor can the local one.
	expectHTTP(t, "DELETE", base+"west", "", http.StatusPreconditionFailed)
	expectHTTP(t, "DELETE", base+"east", "", http.StatusPreconditionFailed)

	// Topic-level replication clusters replace the namespace's.
	topic := "persistent://" + ns + "/t"
	expectHTTP(t, "PUT", restTopic(s.WebURL(), topic), "", http.StatusNoContent)
	repl := restTopic(s.WebURL(), topic) + "/replication"
	expectHTTP(t, "GET", repl, "", http.StatusNoContent)
	expectHTTP(t, "POST", repl, `["east","nowhere"]`, http.StatusPreconditionFailed)
	expectHTTP(t, "POST", repl, `["east"]`, http.StatusNoContent)
	if got := strings.TrimSpace(expectHTTP(t, "GET", repl, "", http.StatusOK)); got != `["east"]` {
		t.Fatalf("topic replication: %s", got)
	}
	if got := strings.TrimSpace(expectHTTP(t, "GET", repl+"?applied=true", "", http.StatusOK)); got != `["east"]` {
		t.Fatalf("applied topic replication: %s", got)
	}
	expectHTTP(t, "DELETE", repl, "", http.StatusNoContent)
	if got := strings.TrimSpace(expectHTTP(t, "GET", repl+"?applied=true", "", http.StatusOK)); got != `["east","west"]` {
		t.Fatalf("applied after delete: %s", got)
	}

	// Once nothing names it, the cluster can go.
	if err := admin.Namespaces().SetNamespaceReplicationClusters(ns, []string{"east"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Tenants().Update(utils.TenantData{Name: "public", AdminRoles: []string{}, AllowedClusters: []string{"east"}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Clusters().Delete("west"); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, admin.Clusters().Delete("west"), http.StatusNotFound, "delete twice")
}
