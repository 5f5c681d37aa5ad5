package test

import (
	"strings"
	"testing"

	"github.com/messagebus/messagebus/server"
)

// mb admin clusters create|get|update|delete and namespaces
// set-clusters|get-clusters, as the README's Geo-replication section shows.
func TestCLIAdminClustersAndReplicationClusters(t *testing.T) {
	s := startServer(t, server.Options{ClusterName: "a"})
	adminCLI(t, s, "clusters", "create", "b", "--url", "http://127.0.0.1:8082", "--broker-url", "pulsar://127.0.0.1:6652",
		"--auth-plugin", "token", "--auth-parameters", "token:xyz").ok(t)
	adminCLI(t, s, "clusters", "create", "b", "--url", "http://127.0.0.1:8082").fails(t, "already exists")
	var c struct {
		ServiceURL               string `json:"serviceUrl"`
		BrokerServiceURL         string `json:"brokerServiceUrl"`
		AuthenticationParameters string `json:"authenticationParameters"`
	}
	adminCLI(t, s, "-o", "json", "clusters", "get", "b").jsonOf(t, &c)
	if c.BrokerServiceURL != "pulsar://127.0.0.1:6652" || c.AuthenticationParameters != "token:xyz" {
		t.Fatalf("clusters get: %+v", c)
	}
	// update keeps what it is not given.
	adminCLI(t, s, "clusters", "update", "b", "--broker-url", "pulsar://127.0.0.1:7000").ok(t)
	adminCLI(t, s, "-o", "json", "clusters", "get", "b").jsonOf(t, &c)
	if c.BrokerServiceURL != "pulsar://127.0.0.1:7000" || c.ServiceURL != "http://127.0.0.1:8082" || c.AuthenticationParameters != "token:xyz" {
		t.Fatalf("after update: %+v", c)
	}
	adminCLI(t, s, "clusters", "create", "bad", "--broker-url", "http://x:1").fails(t, "brokerServiceUrl")
	if out := adminCLI(t, s, "clusters", "list").ok(t); strings.Join(strings.Fields(out), ",") != "a,b" {
		t.Fatalf("clusters list: %q", out)
	}

	adminCLI(t, s, "tenants", "update", "public", "--allowed-clusters", "a,b").ok(t)
	adminCLI(t, s, "namespaces", "create", "public/geo").ok(t)
	adminCLI(t, s, "namespaces", "set-clusters", "public/geo", "--clusters", "a,nowhere").fails(t, "nowhere")
	adminCLI(t, s, "namespaces", "set-clusters", "public/geo", "--clusters", "a,b").ok(t)
	if out := adminCLI(t, s, "namespaces", "get-clusters", "public/geo").ok(t); strings.Join(strings.Fields(out), ",") != "a,b" {
		t.Fatalf("get-clusters: %q", out)
	}
	adminCLI(t, s, "clusters", "delete", "b").fails(t, "not empty")
	adminCLI(t, s, "namespaces", "set-clusters", "public/geo", "--clusters", "a").ok(t)
	adminCLI(t, s, "tenants", "update", "public", "--allowed-clusters", "a").ok(t)
	adminCLI(t, s, "clusters", "delete", "b").ok(t)
	adminCLI(t, s, "clusters", "get", "b").fails(t, "b")
}
