package test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

func TestAdminTenants(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	tenants := admin.Tenants()

	list, err := tenants.List()
	if err != nil || !slices.Contains(list, "public") || !slices.Contains(list, "pulsar") {
		t.Fatalf("tenants %v %v", list, err)
	}
	acme := utils.TenantData{Name: "acme", AllowedClusters: []string{"standalone"}}
	if err := tenants.Create(acme); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, tenants.Create(acme), 409, "create twice")
	expectStatus(t, tenants.Create(utils.TenantData{Name: "other", AllowedClusters: []string{"mars"}}), 412, "unknown cluster")
	expectStatus(t, tenants.Create(utils.TenantData{Name: "bad$name"}), 412, "invalid name")

	got, err := tenants.Get("acme")
	if err != nil || got.AdminRoles == nil || len(got.AdminRoles) != 0 || fmt.Sprint(got.AllowedClusters) != "[standalone]" {
		t.Fatalf("get %+v %v", got, err)
	}
	acme.AdminRoles = []string{"ops"}
	if err := tenants.Update(acme); err != nil {
		t.Fatal(err)
	}
	if got, _ := tenants.Get("acme"); fmt.Sprint(got.AdminRoles) != "[ops]" {
		t.Fatalf("after update %+v", got)
	}
	expectStatus(t, tenants.Update(utils.TenantData{Name: "nobody", AllowedClusters: []string{"standalone"}}), 404, "update a missing tenant")
	// Pulsar checks the body first: clusters before existence.
	expectStatus(t, tenants.Update(utils.TenantData{Name: "nobody"}), 412, "update a missing tenant without clusters")
	_, err = tenants.Get("nobody")
	expectStatus(t, err, 404, "get a missing tenant")

	// A tenant with namespaces is not deleted, unless forced.
	if err := admin.Namespaces().CreateNamespace("acme/a"); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, tenants.Delete("acme"), 409, "delete a tenant with namespaces")
	if err := admin.Namespaces().DeleteNamespace("acme/a"); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Delete("acme"); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, tenants.Delete("acme"), 404, "delete twice")

	// Forced: namespaces and their topics go too.
	if err := tenants.Create(utils.TenantData{Name: "gone", AllowedClusters: []string{"standalone"}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Namespaces().CreateNamespace("gone/ns"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().Create(topicName(t, "persistent://gone/ns/t"), 0); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "DELETE", s.WebURL()+"/admin/v2/tenants/gone?force=true", "", 204)
	if list, _ := tenants.List(); slices.Contains(list, "gone") {
		t.Fatalf("tenants after forced delete: %v", list)
	}
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/tenants/x", `{"adminRoles": [`, 400)
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/tenants/x", `{"adminRoles": "ops"}`, 400)
}

// expectReason sends a raw request and asserts Pulsar's status and reason.
func expectReason(t *testing.T, method, url, body string, code int, reason string) {
	t.Helper()
	resp := expectHTTP(t, method, url, body, code)
	var e struct{ Reason string }
	if err := json.Unmarshal([]byte(resp), &e); err != nil || e.Reason != reason {
		t.Fatalf("%s %s %q: reason %q, want %q", method, url, body, resp, reason)
	}
}

// TestAdminTenantValidation: Pulsar's checks of a TenantInfo on create (PUT)
// and update (POST), each a 412 with Pulsar's reason; a refused body leaves
// the tenant as it was.
func TestAdminTenantValidation(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	tenants := admin.Tenants()
	url := s.WebURL() + "/admin/v2/tenants/"
	const empty, missing, whitespace = "Clusters can not be empty", "Clusters do not exist",
		"AdminRoles contains whitespace in the beginning or end."
	refused := []struct {
		body, reason string
	}{
		{``, empty},
		{`{}`, empty},
		{`null`, empty},
		{`{"adminRoles":["ops"]}`, empty},
		{`{"adminRoles":["ops"],"allowedClusters":[]}`, empty},
		{`{"adminRoles":["ops"],"allowedClusters":null}`, empty},
		{`{"allowedClusters":["standalone",""]}`, empty},
		{`{"allowedClusters":["standalone"," "]}`, empty},
		{`{"allowedClusters":["mars"]}`, missing},
		{`{"allowedClusters":["standalone","mars"]}`, missing},
		{`{"adminRoles":[" ops"],"allowedClusters":["standalone"]}`, whitespace},
		{`{"adminRoles":["ops "],"allowedClusters":["standalone"]}`, whitespace},
		// Clusters are checked before roles, as in Pulsar.
		{`{"adminRoles":[" ops"],"allowedClusters":[]}`, empty},
	}
	for _, c := range refused {
		expectReason(t, "PUT", url+"acme", c.body, 412, c.reason)
	}
	expectHTTP(t, "GET", url+"acme", "", 404)
	expectStatus(t, tenants.Create(utils.TenantData{Name: "acme"}), 412, "create through pulsaradmin without clusters")
	expectStatus(t, tenants.Create(utils.TenantData{Name: "acme", AllowedClusters: []string{}}), 412, "create with no clusters")
	expectHTTP(t, "GET", url+"acme", "", 404)

	expectHTTP(t, "PUT", url+"acme", `{"adminRoles":["ops","ops"],"allowedClusters":["standalone","standalone"]}`, 204)
	check := func(what string) {
		t.Helper()
		got, err := tenants.Get("acme")
		if err != nil || !slices.Equal(got.AdminRoles, []string{"ops"}) || !slices.Equal(got.AllowedClusters, []string{"standalone"}) {
			t.Fatalf("%s: tenant %+v %v, want roles [ops], clusters [standalone]", what, got, err)
		}
	}
	check("after create")
	for _, c := range refused {
		expectReason(t, "POST", url+"acme", c.body, 412, c.reason)
	}
	expectStatus(t, tenants.Update(utils.TenantData{Name: "acme"}), 412, "update through pulsaradmin without clusters")
	check("after refused updates ({} must not wipe the admin roles)")
	// Create of an existing tenant: the body is checked first, then 409.
	expectReason(t, "PUT", url+"acme", `{}`, 412, empty)
	expectHTTP(t, "PUT", url+"acme", `{"allowedClusters":["standalone"]}`, 409)
	check("after refused creates")
	// Update of a missing tenant: the body is checked first, then 404.
	expectReason(t, "POST", url+"nobody", `{}`, 412, empty)
	expectHTTP(t, "POST", url+"nobody", `{"allowedClusters":["standalone"]}`, 404)

	// An update with clusters replaces the whole info, as in Pulsar.
	expectHTTP(t, "POST", url+"acme", `{"adminRoles":["dev"],"allowedClusters":["standalone"]}`, 204)
	if got, err := tenants.Get("acme"); err != nil || !slices.Equal(got.AdminRoles, []string{"dev"}) {
		t.Fatalf("after update: %+v %v", got, err)
	}
	// The tenants the broker creates itself carry the cluster.
	for _, name := range []string{"public", "pulsar"} {
		if got, err := tenants.Get(name); err != nil || !slices.Equal(got.AllowedClusters, []string{"standalone"}) {
			t.Fatalf("bootstrap tenant %s: %+v %v", name, got, err)
		}
	}
}

func TestAdminNamespaces(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	nss := admin.Namespaces()

	ns := newNamespace(t, admin)
	list, err := nss.GetNamespaces("public")
	if err != nil || !slices.Contains(list, ns) {
		t.Fatalf("namespaces %v %v", list, err)
	}
	p, err := nss.GetPolicies(ns)
	if err != nil || fmt.Sprint(p.ReplicationClusters) != "[standalone]" || p.Bundles == nil || p.Bundles.NumBundles != 1 {
		t.Fatalf("policies %+v %v", p, err)
	}
	expectStatus(t, nss.CreateNamespace(ns), 409, "create twice")
	expectStatus(t, nss.CreateNamespace("nobody/ns"), 404, "create in a missing tenant")
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/namespaces/public/bad$ns", "", 412)
	_, err = nss.GetPolicies("public/missing")
	expectStatus(t, err, 404, "policies of a missing namespace")

	// Created with policies, as pulsaradmin sends them (every field present).
	withPolicies := ns + "-p"
	pol := utils.NewDefaultPolicies()
	pol.RetentionPolicies = &utils.RetentionPolicies{RetentionTimeInMinutes: 60, RetentionSizeInMB: 100}
	ttl := 30
	pol.MessageTTLInSeconds = &ttl
	if err := nss.CreateNsWithPolices(withPolicies, *pol); err != nil {
		t.Fatal(err)
	}
	if r, err := nss.GetRetention(withPolicies); err != nil || r == nil || r.RetentionSizeInMB != 100 || r.RetentionTimeInMinutes != 60 {
		t.Fatalf("retention %+v %v", r, err)
	}
	if got, err := nss.GetNamespaceMessageTTL(withPolicies); err != nil || got != 30 {
		t.Fatalf("ttl %d %v", got, err)
	}
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/namespaces/"+ns+"-bad", `{"message_ttl_in_seconds": -5}`, 412)
	expectHTTP(t, "PUT", s.WebURL()+"/admin/v2/namespaces/"+ns+"-bad", `{"retention_policies": 7}`, 400)

	// Topics of the namespace, and deletion refused while there are some.
	client := newClient(t, s.BrokerURL())
	topic := "persistent://" + ns + "/t1"
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	producer.Close()
	if err := admin.Topics().Create(topicName(t, "persistent://"+ns+"/parted"), 2); err != nil {
		t.Fatal(err)
	}
	topics, err := nss.GetTopics(ns)
	want := []string{"persistent://" + ns + "/parted-partition-0", "persistent://" + ns + "/parted-partition-1", topic}
	if err != nil || fmt.Sprint(topics) != fmt.Sprint(want) {
		t.Fatalf("topics %v %v, want %v", topics, err, want)
	}
	body := expectHTTP(t, "GET", s.WebURL()+"/admin/v2/namespaces/"+ns+"/topics?mode=NON_PERSISTENT", "", 200)
	if body != "[]\n" {
		t.Fatalf("non-persistent topics %q", body)
	}
	expectHTTP(t, "GET", s.WebURL()+"/admin/v2/namespaces/"+ns+"/topics?mode=SOME", "", 400)
	expectStatus(t, nss.DeleteNamespace(ns), 409, "delete a namespace with topics")
	expectHTTP(t, "DELETE", s.WebURL()+"/admin/v2/namespaces/"+ns+"?force=true", "", 204)
	if list, _ := nss.GetNamespaces("public"); slices.Contains(list, ns) {
		t.Fatalf("namespace still listed after forced delete: %v", list)
	}
	// Recreated, it starts empty: the topics went with it.
	if err := nss.CreateNamespace(ns); err != nil {
		t.Fatal(err)
	}
	if topics, err := nss.GetTopics(ns); err != nil || len(topics) != 0 {
		t.Fatalf("topics of the recreated namespace: %v %v", topics, err)
	}
	if err := nss.DeleteNamespace(ns); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, nss.DeleteNamespace(ns), 404, "delete twice")
}

func TestAdminNamespacePolicies(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	nss := admin.Namespaces()
	ns := newNamespace(t, admin)
	name := nsName(t, ns)
	base := s.WebURL() + "/admin/v2/namespaces/" + ns

	// Retention.
	if r, err := nss.GetRetention(ns); err != nil || r != nil {
		t.Fatalf("unset retention: %+v %v", r, err)
	}
	if err := nss.SetRetention(ns, utils.NewRetentionPolicies(10, 20)); err != nil {
		t.Fatal(err)
	}
	if r, _ := nss.GetRetention(ns); r == nil || r.RetentionTimeInMinutes != 10 || r.RetentionSizeInMB != 20 {
		t.Fatalf("retention %+v", r)
	}
	expectStatus(t, nss.SetRetention(ns, utils.NewRetentionPolicies(0, 20)), 412, "a single 0 limit")
	expectHTTP(t, "POST", base+"/retention", `{"retentionTimeInMinutes": "ten"}`, 400)
	expectHTTP(t, "POST", base+"/retention", ``, 400)
	// A quota as large as the retention contradicts it.
	expectStatus(t, nss.SetBacklogQuota(ns, utils.NewBacklogQuota(30<<20, 0, utils.ProducerException), utils.DestinationStorage), 412,
		"backlog quota above retention")
	if err := nss.RemoveRetention(ns); err != nil {
		t.Fatal(err)
	}
	if r, _ := nss.GetRetention(ns); r != nil {
		t.Fatalf("retention after remove %+v", r)
	}

	// Message TTL.
	if err := nss.SetNamespaceMessageTTL(ns, 90); err != nil {
		t.Fatal(err)
	}
	if ttl, err := nss.GetNamespaceMessageTTL(ns); err != nil || ttl != 90 {
		t.Fatalf("ttl %d %v", ttl, err)
	}
	expectStatus(t, nss.SetNamespaceMessageTTL(ns, -1), 412, "negative TTL")
	if err := nss.RemoveNamespaceMessageTTL(ns); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "GET", base+"/messageTTL", "", 204)

	// Backlog quotas.
	if err := nss.SetBacklogQuota(ns, utils.NewBacklogQuota(1<<20, 0, utils.ProducerRequestHold), utils.DestinationStorage); err != nil {
		t.Fatal(err)
	}
	if err := nss.SetBacklogQuota(ns, utils.NewBacklogQuota(0, 600, utils.ConsumerBacklogEviction), utils.MessageAge); err != nil {
		t.Fatal(err)
	}
	quotas, err := nss.GetBacklogQuotaMap(ns)
	if err != nil || quotas[utils.DestinationStorage].LimitSize != 1<<20 || quotas[utils.DestinationStorage].Policy != utils.ProducerRequestHold ||
		quotas[utils.MessageAge].LimitTime != 600 {
		t.Fatalf("quotas %+v %v", quotas, err)
	}
	expectHTTP(t, "POST", base+"/backlogQuota", `{"limitSize": 10, "policy": "drop_everything"}`, 400)
	expectHTTP(t, "POST", base+"/backlogQuota?backlogQuotaType=bogus", `{"limitSize": 10, "policy": "producer_exception"}`, 400)
	expectHTTP(t, "POST", base+"/backlogQuota", `{"limitSize": -7, "policy": "producer_exception"}`, 412)
	if err := nss.RemoveBacklogQuota(ns); err != nil {
		t.Fatal(err)
	}
	if quotas, _ := nss.GetBacklogQuotaMap(ns); len(quotas) != 1 {
		t.Fatalf("quotas after removing destination_storage: %+v", quotas)
	}

	// Deduplication.
	expectHTTP(t, "GET", base+"/deduplication", "", 204)
	if err := nss.SetDeduplicationStatus(ns, true); err != nil {
		t.Fatal(err)
	}
	if body := expectHTTP(t, "GET", base+"/deduplication", "", 200); body != "true\n" {
		t.Fatalf("deduplication %q", body)
	}
	expectHTTP(t, "POST", base+"/deduplication", `"yes"`, 400)
	expectHTTP(t, "DELETE", base+"/deduplication", "", 204)
	expectHTTP(t, "GET", base+"/deduplication", "", 204)

	// Permissions.
	if err := nss.GrantNamespacePermission(name, "app", []utils.AuthAction{"produce", "consume"}); err != nil {
		t.Fatal(err)
	}
	perms, err := nss.GetNamespacePermissions(name)
	if err != nil || fmt.Sprint(perms["app"]) != "[consume produce]" {
		t.Fatalf("permissions %v %v", perms, err)
	}
	expectHTTP(t, "POST", base+"/permissions/app", `["produce", "destroy"]`, 400)
	if err := nss.RevokeNamespacePermission(name, "app"); err != nil {
		t.Fatal(err)
	}
	if perms, _ := nss.GetNamespacePermissions(name); len(perms) != 0 {
		t.Fatalf("permissions after revoke %v", perms)
	}

	// Auto topic creation override.
	three := 3
	if err := nss.SetTopicAutoCreation(name, utils.TopicAutoCreationConfig{Allow: true, Type: utils.Partitioned, Partitions: &three}); err != nil {
		t.Fatal(err)
	}
	if c, err := nss.GetTopicAutoCreation(name); err != nil || c == nil || !c.Allow || c.Type != utils.Partitioned || *c.Partitions != 3 {
		t.Fatalf("auto topic creation %+v %v", c, err)
	}
	expectStatus(t, nss.SetTopicAutoCreation(name, utils.TopicAutoCreationConfig{Allow: true, Type: utils.Partitioned}), 412,
		"partitioned without partitions")
	if err := nss.RemoveTopicAutoCreation(name); err != nil {
		t.Fatal(err)
	}
	if c, err := nss.GetTopicAutoCreation(name); err != nil || c != nil {
		t.Fatalf("auto topic creation after remove %+v %v", c, err)
	}

	// Producer and consumer limits.
	if err := nss.SetMaxProducersPerTopic(name, 4); err != nil {
		t.Fatal(err)
	}
	if err := nss.SetMaxConsumersPerTopic(name, 7); err != nil {
		t.Fatal(err)
	}
	if n, err := nss.GetMaxProducersPerTopic(name); err != nil || n != 4 {
		t.Fatalf("max producers %d %v", n, err)
	}
	if n, err := nss.GetMaxConsumersPerTopic(name); err != nil || n != 7 {
		t.Fatalf("max consumers %d %v", n, err)
	}
	expectStatus(t, nss.SetMaxProducersPerTopic(name, -2), 412, "negative max producers")
	expectHTTP(t, "POST", base+"/maxConsumersPerTopic", `1.5`, 400)

	// Everything shows in the policies, under Pulsar's names.
	p, err := nss.GetPolicies(ns)
	if err != nil || p.MaxProducersPerTopic == nil || *p.MaxProducersPerTopic != 4 || p.DeduplicationEnabled != nil ||
		p.BacklogQuotaMap[utils.MessageAge].LimitTime != 600 || p.MessageTTLInSeconds != nil {
		t.Fatalf("policies %+v %v", p, err)
	}
	if err := nss.RemoveMaxProducersPerTopic(name); err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "GET", base+"/maxProducersPerTopic", "", 204)
	// Policies of a missing namespace.
	expectStatus(t, nss.SetNamespaceMessageTTL("public/missing", 5), 404, "TTL of a missing namespace")
}
