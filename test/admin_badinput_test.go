package test

import (
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/messagebus/messagebus/server"
)

// TestAdminBadInput sends what no well-behaved client sends: every answer is
// a 4xx with Pulsar's {"reason": ...}, never a 500.
func TestAdminBadInput(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	web := s.WebURL()
	topic := "persistent://" + ns + "/t"
	if err := admin.Topics().Create(topicName(t, topic), 0); err != nil {
		t.Fatal(err)
	}
	tp := restTopic(web, topic)
	big := `{"adminRoles": ["` + strings.Repeat("x", 2<<20) + `"]}`
	for _, c := range []struct {
		method, url, body string
		code              int
	}{
		// Malformed bodies and parameters.
		{"PUT", web + "/admin/v2/tenants/t1", `{"allowedClusters": ["standalone"]`, 400},
		{"PUT", web + "/admin/v2/tenants/t1", big, 413},
		{"PUT", web + "/admin/v2/namespaces/" + ns + "-x", `[1, 2]`, 400},
		{"POST", web + "/admin/v2/namespaces/" + ns + "/messageTTL", `"ten"`, 400},
		{"POST", web + "/admin/v2/namespaces/" + ns + "/messageTTL", ``, 400},
		{"POST", web + "/admin/v2/namespaces/" + ns + "/permissions/r", `{"produce": true}`, 400},
		{"POST", web + "/admin/v2/namespaces/" + ns + "/autoTopicCreation", `{"allowAutoTopicCreation": "yes"}`, 400},
		{"DELETE", web + "/admin/v2/namespaces/" + ns + "?force=perhaps", ``, 400},
		{"PUT", tp + "-p/partitions", `"three"`, 400},
		{"PUT", tp + "-p/partitions", `{"partitions": "3"}`, 400},
		{"PUT", tp + "-p/partitions", `0`, 406},
		{"PUT", tp + "-p/partitions", `1000000`, 412},
		{"PUT", tp + "-q", `"not properties"`, 400},
		{"POST", tp + "/subscription/s/skip/many", ``, 400},
		{"POST", tp + "/subscription/s/skip/-1", ``, 400},
		{"POST", tp + "/subscription/s/expireMessages/-5", ``, 400},
		{"POST", tp + "/subscription/s/resetcursor/noon", ``, 400},
		{"POST", tp + "/subscription/s/resetcursor", ``, 400},
		{"POST", tp + "/subscription/s/resetcursor", `{"ledgerId": 1}`, 400},
		{"PUT", tp + "/subscription/s", `{"ledgerId": "one", "entryId": 0}`, 400},
		{"PUT", tp + "/subscription/s?replicated=sometimes", ``, 400},
		{"GET", tp + "/subscription/s/position/first", ``, 400},
		{"GET", tp + "/partitioned-stats?perPartition=maybe", ``, 400},
		// Invalid names.
		{"PUT", web + "/admin/v2/tenants/a%20b", `{}`, 412},
		{"GET", web + "/admin/v2/namespaces/public/bad%20ns", ``, 412},
		{"POST", web + "/admin/v2/namespaces/public/bad%7Cns/retention", `{"retentionTimeInMinutes": 1, "retentionSizeInMB": 1}`, 412},
		{"GET", web + "/admin/v2/persistent/public/bad%20ns/t/stats", ``, 412},
		{"PUT", web + "/admin/v2/persistent/public/default/bad%01topic", ``, 412},
		// Missing things.
		{"GET", web + "/admin/v2/tenants/nobody", ``, 404},
		{"DELETE", web + "/admin/v2/namespaces/public/nothing", ``, 404},
		{"GET", web + "/admin/v2/namespaces/public/nothing/topics", ``, 404},
		{"GET", web + "/admin/v2/persistent/public/nothing", ``, 404},
		{"GET", tp + "-missing/stats", ``, 404},
		{"GET", tp + "-missing/internalStats", ``, 404},
		{"GET", tp + "-missing/lastMessageId", ``, 404},
		{"DELETE", tp + "-missing", ``, 404},
		{"DELETE", tp + "/subscription/nope", ``, 404},
		{"POST", tp + "/subscription/nope/skip_all", ``, 404},
		{"GET", tp + "/subscription/nope/position/1", ``, 404},
		{"DELETE", tp + "/permissions/nobody", ``, 412},
		// No such endpoint, or not with this method.
		{"GET", web + "/admin/v2/unknown", ``, 404},
		{"PATCH", web + "/admin/v2/tenants/public", ``, 405},
		{"POST", tp + "/stats", ``, 405},
		// Operations a non-persistent topic does not support.
		{"GET", web + "/admin/v2/non-persistent/public/default/np/lastMessageId", ``, 405},
	} {
		expectHTTP(t, c.method, c.url, c.body, c.code)
	}
}

func TestAdminTopicPermissions(t *testing.T) {
	s := startServer(t, server.Options{})
	admin := newAdmin(t, s)
	ns := newNamespace(t, admin)
	tn := topicName(t, "persistent://"+ns+"/t")
	if err := admin.Namespaces().GrantNamespacePermission(nsName(t, ns), "reader", []utils.AuthAction{"consume"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().GrantPermission(tn, "reader", []utils.AuthAction{"produce"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Topics().GrantPermission(tn, "writer", []utils.AuthAction{"produce"}); err != nil {
		t.Fatal(err)
	}
	perms, err := admin.Topics().GetPermissions(tn)
	if err != nil || len(perms["reader"]) != 2 || len(perms["writer"]) != 1 {
		t.Fatalf("topic permissions %v %v", perms, err)
	}
	if err := admin.Topics().RevokePermission(tn, "writer"); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, admin.Topics().RevokePermission(tn, "writer"), 412, "revoke twice")
	if perms, _ := admin.Topics().GetPermissions(tn); len(perms) != 1 {
		t.Fatalf("topic permissions after revoke %v", perms)
	}
}
