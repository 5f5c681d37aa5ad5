package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/cluster"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestBundles(t *testing.T) {
	if got := cluster.Boundaries(4); fmt.Sprint(got) != "[0x00000000 0x40000000 0x80000000 0xc0000000 0xffffffff]" {
		t.Fatalf("Boundaries(4) = %v", got)
	}
	bs := cluster.Bundles("t/ns", 4)
	if bs[3].Name() != "0xc0000000_0xffffffff" {
		t.Fatalf("last bundle %s", bs[3].Name())
	}
	for _, b := range bs {
		p, err := cluster.ParseBundle("t/ns", b.Name(), 4)
		if err != nil || p != b {
			t.Fatalf("ParseBundle(%s) = %v, %v", b.Name(), p, err)
		}
	}
	for _, bad := range []string{"", "0x0_0x1", "00000000_40000000", "0x00000000_0x40000000_x", "0xzz_0x40000000"} {
		if _, err := cluster.ParseBundle("t/ns", bad, 4); err == nil {
			t.Fatalf("ParseBundle(%q) accepted", bad)
		}
	}
	b := cluster.BundleOf("t/ns", "persistent://t/ns/x", 4)
	if h := cluster.Hash("persistent://t/ns/x"); h < b.Lo || h >= b.Hi {
		t.Fatalf("hash %x outside %s", h, b.Name())
	}
}

type recorder struct {
	mu        sync.Mutex
	released  []string
	abandoned []string // bundles given up with a lost lease (before their release)
	ch        chan string
}

func (r *recorder) abandon(b cluster.Bundle) {
	r.mu.Lock()
	r.abandoned = append(r.abandoned, b.String())
	r.mu.Unlock()
}

func (r *recorder) abandonedList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.abandoned...)
}

func (r *recorder) release(b cluster.Bundle) {
	r.mu.Lock()
	r.released = append(r.released, b.String())
	r.mu.Unlock()
	r.ch <- b.String()
}

func newManager(t *testing.T, c *clientv3.Client, prefix, id string, r *recorder) *cluster.Manager {
	t.Helper()
	m, err := cluster.New(context.Background(), cluster.Options{Client: c, Prefix: prefix, ID: id,
		PulsarURL: "pulsar://" + id, HTTPURL: "http://" + id, LeaseTTL: 2 * time.Second,
		Listeners:    map[string]cluster.Listener{"ext": {PulsarURL: "pulsar://ext-" + id}},
		LoadInterval: 100 * time.Millisecond, Release: r.release, Abandon: r.abandon})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOwnership(t *testing.T) {
	e := etcdtest.Start(t, 1)
	c := e.Client(t)
	ctx := context.Background()
	ra, rb := &recorder{ch: make(chan string, 16)}, &recorder{ch: make(chan string, 16)}
	a := newManager(t, c, "/own/", "a", ra)
	b := newManager(t, c, "/own/", "b", rb)
	defer b.Close()
	if _, err := cluster.New(ctx, cluster.Options{Client: c, Prefix: "/own/", ID: "a"}); err == nil {
		t.Fatal("a second live broker with the same id registered")
	}
	bs, err := a.Brokers(ctx)
	if err != nil || len(bs) != 2 {
		t.Fatalf("Brokers = %v, %v", bs, err)
	}

	topic := "persistent://t/ns/x"
	// a is asked first: the least-loaded broker (fewest bundles, then id) is a itself.
	ans, err := a.Lookup(ctx, "t/ns", topic, false)
	if err != nil || !ans.Self {
		t.Fatalf("lookup on a: %+v, %v", ans, err)
	}
	f, err := a.Fence("t/ns", topic)
	if err != nil || f.Rev == 0 {
		t.Fatalf("Fence = %+v, %v", f, err)
	}
	// b redirects to the owner.
	ans, err = b.Lookup(ctx, "t/ns", topic, false)
	if err != nil || ans.Self || ans.Broker.ID != "a" || ans.Broker.PulsarURL != "pulsar://a" ||
		ans.Broker.Listeners["ext"].PulsarURL != "pulsar://ext-a" {
		t.Fatalf("lookup on b: %+v, %v", ans, err)
	}
	if _, err := b.Fence("t/ns", topic); err == nil {
		t.Fatal("b has a fence for a's bundle")
	}
	// Another bundle, asked on a: a now owns one bundle, b none: assigned to b.
	var other string
	for i := 0; ; i++ {
		other = fmt.Sprintf("persistent://t/ns/y%d", i)
		if cluster.BundleOf("t/ns", other, 4) != cluster.BundleOf("t/ns", topic, 4) {
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for { // a's load (1 bundle) is published asynchronously
		bs, _ := a.Brokers(ctx)
		if len(bs) == 2 && (bs[0].Bundles == 1 || bs[1].Bundles == 1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ans, err = a.Lookup(ctx, "t/ns", other, false)
	if err != nil || ans.Self || !ans.Assign || ans.Broker.ID != "b" {
		t.Fatalf("lookup of an unowned bundle on a: %+v, %v", ans, err)
	}
	// The client goes to b with authoritative set: b takes it.
	if ans, err = b.Lookup(ctx, "t/ns", other, true); err != nil || !ans.Self {
		t.Fatalf("authoritative lookup on b: %+v, %v", ans, err)
	}

	// Unload on the owner: released, then unowned.
	bundle := cluster.BundleOf("t/ns", other, 4)
	if owned, err := b.Unload(ctx, bundle); !owned || err != nil {
		t.Fatalf("Unload = %v, %v", owned, err)
	}
	if got := <-rb.ch; got != bundle.String() {
		t.Fatalf("released %s", got)
	}
	if _, ok, _ := a.OwnerOf(ctx, bundle); ok {
		t.Fatal("bundle still owned after unload")
	}
	if ab := rb.abandonedList(); len(ab) != 0 {
		t.Fatalf("a voluntary unload abandoned %v", ab)
	}

	// a's lease is revoked (as when it expires): a stops serving its bundle at once.
	if _, err := c.Revoke(ctx, aLease(t, c, "/own/", "a")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ra.ch:
		if got != cluster.BundleOf("t/ns", topic, 4).String() {
			t.Fatalf("a released %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a did not stop serving its bundle after losing its lease")
	}
	if ab := ra.abandonedList(); len(ab) != 1 || ab[0] != cluster.BundleOf("t/ns", topic, 4).String() {
		t.Fatalf("a abandoned %v before releasing its bundle after losing its lease", ab)
	}
	if _, err := a.Fence("t/ns", topic); err == nil {
		t.Fatal("a still has a fence after losing its lease")
	}
	// b takes the bundle over.
	if ans, err = b.Lookup(ctx, "t/ns", topic, true); err != nil || !ans.Self {
		t.Fatalf("b after a's loss: %+v, %v", ans, err)
	}
	if f2, _ := b.Fence("t/ns", topic); f2.Rev <= f.Rev {
		t.Fatalf("new token %d not above %d", f2.Rev, f.Rev)
	}
	// a registers again with a new lease.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if bs, _ := b.Brokers(ctx); len(bs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a did not register again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Close hands the bundles over.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.OwnerOf(ctx, cluster.BundleOf("t/ns", topic, 4)); ok {
		t.Fatal("bundle still owned after the owner closed")
	}
	a.Close()
}

func aLease(t *testing.T, c *clientv3.Client, prefix, id string) clientv3.LeaseID {
	t.Helper()
	r, err := c.Get(context.Background(), prefix+"brokers/"+id)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("broker key of %s: %v", id, err)
	}
	return clientv3.LeaseID(r.Kvs[0].Lease)
}

// FuzzParseBundle: any input is a bundle of the namespace or an error,
// and a parsed bundle names itself.
func FuzzParseBundle(f *testing.F) {
	for _, s := range []string{"0x00000000_0x40000000", "0xc0000000_0xffffffff", "0x_0x", "_", "0x1_0x2_0x3", "0xffffffffffffffffff_0x0"} {
		f.Add(s, 4)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = n%64 + 1
		if n < 1 {
			n = -n + 1
		}
		b, err := cluster.ParseBundle("t/ns", s, n)
		if err != nil {
			return
		}
		if b.Name() != strings.ToLower(s) && b.Name() != s {
			t.Fatalf("ParseBundle(%q) = %s", s, b.Name())
		}
	})
}
