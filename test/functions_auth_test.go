package test

import (
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// TestFunctionsAuthorization: a tenant admin and a role with the functions
// grant on the namespace manage its functions; a role with only produce
// may not; the worker runs with its own token.
func TestFunctionsAuthorization(t *testing.T) {
	path, key := secretKey(t)
	s := startServer(t, server.Options{
		Security:  server.Security{AuthTokenSecretKey: path, SuperuserRoles: []string{"admin", "worker"}},
		Functions: server.Functions{AuthToken: signToken(t, key, "worker", time.Time{}), CallTimeout: time.Second},
	})
	admin := tokenAdmin(t, s.WebURL(), signToken(t, key, "admin", time.Time{}))
	if err := admin.Tenants().Create(utils.TenantData{Name: "acme", AdminRoles: []string{"acme-admin"}, AllowedClusters: []string{"standalone"}}); err != nil {
		t.Fatal(err)
	}
	ns, _ := utils.GetNamespaceName("acme/app")
	if err := admin.Namespaces().CreateNamespace("acme/app"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().GrantNamespacePermission(*ns, "deployer", []utils.AuthAction{"functions"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().GrantNamespacePermission(*ns, "producer", []utils.AuthAction{"produce"}); err != nil {
		t.Fatal(err)
	}
	module := moduleFile(t, "../examples/functions/upper")
	cfg := func(name string) *utils.FunctionConfig {
		return &utils.FunctionConfig{Tenant: "acme", Namespace: "app", Name: name, Inputs: []string{"persistent://acme/app/in"},
			Output: "persistent://acme/app/out", Parallelism: 1}
	}
	for _, role := range []string{"acme-admin", "deployer"} {
		c := tokenAdmin(t, s.WebURL(), signToken(t, key, role, time.Time{}))
		if err := c.Functions().CreateFunc(cfg("f-"+role), module); err != nil {
			t.Fatalf("%s create: %v", role, err)
		}
		if _, err := c.Functions().GetFunctions("acme", "app"); err != nil {
			t.Fatalf("%s list: %v", role, err)
		}
	}
	producer := tokenAdmin(t, s.WebURL(), signToken(t, key, "producer", time.Time{}))
	err := producer.Functions().CreateFunc(cfg("f-producer"), module)
	expectStatus(t, err, http.StatusForbidden, "create with only produce")
	_, err = producer.Functions().GetFunctions("acme", "app")
	expectStatus(t, err, http.StatusForbidden, "list with only produce")
	// The worker's token lets the deployed function run.
	got := triggerHTTPAuth(t, s.WebURL()+"/admin/v3/functions/acme/app/f-deployer/trigger", signToken(t, key, "deployer", time.Time{}), "hi")
	if got != "HI" {
		t.Fatalf("trigger answered %q", got)
	}
}

// TestFunctionsNeedWorkerTokenWithAuth: with authentication on and no
// --function-auth-token the worker is off and the API says why.
func TestFunctionsNeedWorkerTokenWithAuth(t *testing.T) {
	path, key := secretKey(t)
	s := startServer(t, server.Options{Security: server.Security{AuthTokenSecretKey: path, SuperuserRoles: []string{"admin"}}})
	admin := tokenAdmin(t, s.WebURL(), signToken(t, key, "admin", time.Time{}))
	_, err := admin.Functions().GetFunctions("public", "default")
	expectStatus(t, err, http.StatusServiceUnavailable, "list without a worker")
}
