package admin

import "testing"

// What each path needs: a table, so a change in the rules is a visible diff.
func TestClassify(t *testing.T) {
	const topic = "/admin/v2/persistent/acme/app/orders"
	cases := []struct {
		method, path string
		need         need
		tenant, sub  string
	}{
		{"GET", "/healthz", needNothing, "", ""},
		{"POST", "/admin/v3/sources/acme/app/pg", needFunctions, "acme", ""},
		{"GET", "/admin/v3/sinks/acme/app", needFunctions, "acme", ""},
		{"POST", "/admin/v3/sinks/acme/app/lake/0/restart", needFunctions, "acme", ""},
		{"GET", "/admin/v3/sources/builtinsources", needAuthenticated, "", ""},
		{"GET", "/admin/v3/sinks/builtinsinks", needAuthenticated, "", ""},
		{"GET", "/admin/v3/sources/acme", needSuperuser, "", ""},
		{"GET", "/metrics", needNothing, "", ""},
		{"GET", "/admin/v2/brokers/health", needNothing, "", ""},
		// The console is mounted outside the admin API (server/console.go):
		// here its paths are unknown ones, for superusers only.
		{"GET", "/console/app.js", needSuperuser, "", ""},
		{"GET", "/debug/pprof/heap", needSuperuser, "", ""},
		{"GET", "/admin/v2/clusters", needAuthenticated, "", ""},
		{"PUT", "/admin/v2/clusters/x", needSuperuser, "", ""},
		{"GET", "/admin/v2/tenants", needSuperuser, "", ""},
		{"GET", "/admin/v2/tenants/acme", needTenantAdmin, "acme", ""},
		{"PUT", "/admin/v2/tenants/acme", needSuperuser, "", ""},
		{"DELETE", "/admin/v2/tenants/acme", needSuperuser, "", ""},
		{"GET", "/admin/v2/namespaces/acme", needTenantAdmin, "acme", ""},
		{"PUT", "/admin/v2/namespaces/acme/app", needTenantAdmin, "acme", ""},
		{"POST", "/admin/v2/namespaces/acme/app/permissions/bob", needTenantAdmin, "acme", ""},
		{"GET", "/admin/v2/namespaces/acme/app/topics", needListTopics, "acme", ""},
		{"GET", "/admin/v2/persistent/acme/app", needListTopics, "acme", ""},
		{"GET", "/admin/v2/persistent/acme/app/partitioned", needListTopics, "acme", ""},
		{"PUT", topic, needTenantAdmin, "acme", ""},
		{"DELETE", topic, needTenantAdmin, "acme", ""},
		{"GET", topic + "/stats", needLookup, "acme", ""},
		{"GET", topic + "/internalStats", needLookup, "acme", ""},
		{"GET", topic + "/partitions", needLookup, "acme", ""},
		{"POST", topic + "/partitions", needTenantAdmin, "acme", ""},
		{"GET", topic + "/subscriptions", needConsume, "acme", ""},
		{"PUT", topic + "/subscription/billing", needConsume, "acme", "billing"},
		{"POST", topic + "/subscription/billing/skip_all", needConsume, "acme", "billing"},
		{"GET", topic + "/ledger/1/entry/2", needConsume, "acme", ""},
		{"POST", topic + "/messageTTL", needTenantAdmin, "acme", ""},
		{"POST", topic + "/terminate", needTenantAdmin, "acme", ""},
		{"POST", topic + "/permissions/bob", needTenantAdmin, "acme", ""},
		{"GET", "/lookup/v2/topic/persistent/acme/app/orders", needLookup, "acme", ""},
		{"GET", "/admin/v2/persistent/acme/a p/orders", needTenantAdmin, "acme", ""},
		{"GET", "/admin/v2/something-new", needSuperuser, "", ""},
		{"POST", "/access/v1/WhoAmI", needNothing, "", ""},
		{"GET", "/", needSuperuser, "", ""},
	}
	for _, c := range cases {
		got := classify(c.method, c.path)
		if got.need != c.need || got.tenant != c.tenant || got.sub != c.sub {
			t.Errorf("%s %s: need %d tenant %q sub %q, want %d %q %q", c.method, c.path, got.need, got.tenant, got.sub, c.need, c.tenant, c.sub)
		}
	}
}
