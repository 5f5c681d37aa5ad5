package replication

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An admin call starts at any host of a multi-host serviceUrl (a dead one
// is passed over) and follows a 307 to another host (the topic's owner)
// with the link's credentials and its body.
func TestAdminCallFollowsRedirectWithCredentials(t *testing.T) {
	var gotAuth, gotBody string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer owner.Close()
	_, ownerPort, _ := net.SplitHostPort(strings.TrimPrefix(owner.URL, "http://"))
	// Another host name for the same listener: Go's client drops the
	// Authorization header on a redirect to another host.
	ownerURL := "http://localhost:" + ownerPort
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("front: Authorization %q", r.Header.Get("Authorization"))
		}
		http.Redirect(w, r, ownerURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer front.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	ep := Endpoint{ServiceURL: "http://" + deadAddr + "," + strings.TrimPrefix(front.URL, "http://"), httpAuth: "Bearer tok"}
	client := ep.adminClient()
	for range 3 { // the dead host is tried first in some of them
		gotAuth, gotBody = "", ""
		code, _, err := ep.adminCall(context.Background(), client, http.MethodPost, "/admin/v2/persistent/t/ns/x/subscription/s/replicatedPosition", `{"positions":{}}`)
		if err != nil || code != http.StatusNoContent {
			t.Fatalf("call: %d %v", code, err)
		}
		if gotAuth != "Bearer tok" || gotBody != `{"positions":{}}` {
			t.Fatalf("owner got Authorization %q body %q", gotAuth, gotBody)
		}
	}
}
