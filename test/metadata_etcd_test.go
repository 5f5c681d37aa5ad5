package test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
)

// TestPolicyEnforcedAfterEtcdOutage: the broker's metadata is in etcd; etcd
// is killed and started again with nothing changed meanwhile; a policy
// changed after the outage is enforced, so no cached policy stayed stale.
func TestPolicyEnforcedAfterEtcdOutage(t *testing.T) {
	c := etcdtest.StartProcesses(t, 1)
	p := startProc(t, t.TempDir(), 0, 0, "--metadata-store", c.URL(), "--metadata-prefix", "/outage", "--metadata-timeout", "1s")
	client := newClient(t, p.brokerURL)
	topic := "persistent://public/default/after-outage"
	// Two producers are allowed: the namespace's policies are now cached.
	for range 2 {
		prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
	}
	c.Stop(0)
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	// The broker reconnects to etcd within a second or two.
	eventually(t, "the policy change to be accepted after the outage", func() bool {
		code, _ := httpDo(t, "POST", p.webURL+"/admin/v2/namespaces/public/default/maxProducersPerTopic", "1")
		return code == http.StatusNoContent
	})
	eventually(t, "max producers 1 to be enforced", func() bool {
		prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err == nil {
			prod.Close()
			return false
		}
		if !strings.Contains(err.Error(), "ProducerBusy") {
			t.Fatalf("third producer: %v", err)
		}
		return true
	})
}

// TestMetadataInEtcd: what a broker writes lives in etcd under its prefix:
// another broker with a new data dir and the same prefix sees it, one
// with another prefix does not; the store's metrics are exported.
func TestMetadataInEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	p := startProc(t, t.TempDir(), 0, 0, "--metadata-store", c.URL(), "--metadata-prefix", "/cluster-a")
	putTenant(t, p.webURL, "acme")
	expectHTTP(t, "PUT", p.webURL+"/admin/v2/namespaces/acme/orders", "", 204)
	expectHTTP(t, "POST", p.webURL+"/admin/v2/namespaces/acme/orders/messageTTL", "60", 204)
	_, metrics := httpDo(t, "GET", p.webURL+"/metrics", "")
	for _, want := range []string{`mb_metadata_request_seconds_count{op="txn"}`, "mb_metadata_request_errors_total", "mb_metadata_watch_resets_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	p.cmd.Process.Kill()
	<-p.exited

	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/cluster-a/admin/policies/acme/orders")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"message_ttl_in_seconds":60`) {
		t.Fatalf("namespace record in etcd: %+v %v", resp, err)
	}

	same := startProc(t, t.TempDir(), 0, 0, "--metadata-store", c.URL(), "--metadata-prefix", "/cluster-a")
	if body := expectHTTP(t, "GET", same.webURL+"/admin/v2/namespaces/acme/orders/messageTTL", "", 200); strings.TrimSpace(body) != "60" {
		t.Fatalf("TTL seen by a broker on the same prefix: %q", body)
	}
	other := startProc(t, t.TempDir(), 0, 0, "--metadata-store", c.URL(), "--metadata-prefix", "/cluster-b")
	expectHTTP(t, "GET", other.webURL+"/admin/v2/tenants/acme", "", 404)
}

// TestEtcdUnreachableStopsStartup: a broker whose etcd does not answer
// exits with a message naming it, within about the timeout.
func TestEtcdUnreachableStopsStartup(t *testing.T) {
	start := time.Now()
	args := []string{"standalone", "--data-dir", t.TempDir(), "--broker-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--metadata-store", "etcd://127.0.0.1:1", "--metadata-timeout", "1s"}
	outb, err := exec.Command(mbBinary, args...).CombinedOutput()
	out := string(outb)
	if err == nil {
		t.Fatal("mb started without its etcd")
	}
	if !strings.Contains(out, "etcd 127.0.0.1:1") {
		t.Fatalf("message does not name etcd: %s", out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %s to give up", d)
	}
}
