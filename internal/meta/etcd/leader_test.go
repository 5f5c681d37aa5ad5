package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/meta/etcd"
	"github.com/messagebus/messagebus/internal/naming"
	"github.com/messagebus/messagebus/internal/testutil/etcdtest"
)

var errAlreadyApplied = errors.New("change already applied")

// TestLeaderKillDuringPolicyChanges: three etcd members, each a process;
// policy changes go on while the leader is killed with SIGKILL (and later
// started again). Every change is applied exactly once: none is lost, none
// is written twice, and a watch sees each one once, in order.
func TestLeaderKillDuringPolicyChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("kills etcd members")
	}
	c := etcdtest.StartProcesses(t, 3)
	s, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &meta.Resources{Store: s}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Bootstrap(ctx, "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	ns := naming.Namespace{Tenant: "public", Name: "default"}
	key := meta.NamespacePoliciesPrefix + ns.String()
	events := s.Watch(ctx, key)

	const changes = 60
	role := func(i int) string { return fmt.Sprintf("role-%03d", i) }
	// grant gives role i produce, retrying on errors as an admin client
	// does; a write that failed but was applied is seen on the retry.
	grant := func(i int) (retries int) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := r.UpdateNamespace(ctx, ns, func(p *meta.Policies) error {
				if p.AuthPolicies == nil {
					p.AuthPolicies = &meta.AuthPolicies{NamespaceAuth: map[string][]string{}}
				}
				if p.AuthPolicies.NamespaceAuth == nil {
					p.AuthPolicies.NamespaceAuth = map[string][]string{}
				}
				if _, ok := p.AuthPolicies.NamespaceAuth[role(i)]; ok {
					return errAlreadyApplied
				}
				p.AuthPolicies.NamespaceAuth[role(i)] = []string{"produce"}
				return nil
			})
			if err == nil || errors.Is(err, errAlreadyApplied) {
				return retries
			}
			if time.Now().After(deadline) {
				t.Fatalf("change %d still failing after 60 s: %v", i, err)
			}
			retries++
		}
	}

	var killed, restarted int
	var wg sync.WaitGroup
	totalRetries := 0
	for i := range changes {
		switch i {
		case changes / 3:
			// Kill the leader while a change is in flight.
			leader, err := c.Leader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			killed = leader
			wg.Add(1)
			go func() { defer wg.Done(); c.Stop(leader) }()
		case 2 * changes / 3:
			wg.Wait()
			if err := c.Restart(killed); err != nil {
				t.Fatal(err)
			}
			restarted++
		}
		totalRetries += grant(i)
	}
	wg.Wait()
	t.Logf("killed member %d during change %d; %d retries; restarted %d", killed, changes/3, totalRetries, restarted)

	// Nothing lost.
	p, err := r.Namespace(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.AuthPolicies.NamespaceAuth) != changes {
		t.Fatalf("%d grants stored, want %d", len(p.AuthPolicies.NamespaceAuth), changes)
	}
	// Nothing written twice: each write of the record added exactly one
	// grant, and the watch delivered each write once.
	have := map[string]bool{}
	var lastRev int64
	for n := 0; n < changes; {
		var ev meta.Event
		select {
		case ev = <-events:
		case <-time.After(30 * time.Second):
			t.Fatalf("watch delivered %d of %d changes", n, changes)
		}
		if ev.Type == meta.EventReset {
			t.Logf("watch reset at revision %d", ev.Revision)
			continue
		}
		if ev.Revision <= lastRev {
			t.Fatalf("event at revision %d after %d: delivered twice", ev.Revision, lastRev)
		}
		lastRev = ev.Revision
		var got meta.Policies
		if err := json.Unmarshal(ev.KV.Value, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.AuthPolicies.NamespaceAuth) != len(have)+1 {
			t.Fatalf("write at revision %d holds %d grants after %d: not exactly one change", ev.Revision, len(got.AuthPolicies.NamespaceAuth), len(have))
		}
		for r := range got.AuthPolicies.NamespaceAuth {
			have[r] = true
		}
		if !have[role(n)] {
			t.Fatalf("write %d lacks %s", n, role(n))
		}
		n++
	}
	// The restarted member caught up: ask it alone.
	one, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints()[killed : killed+1], Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	kv, err := one.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var onMember meta.Policies
	if err := json.Unmarshal(kv.Value, &onMember); err != nil || len(onMember.AuthPolicies.NamespaceAuth) != changes {
		t.Fatalf("restarted member has %d grants (%v), want %d", len(onMember.AuthPolicies.NamespaceAuth), err, changes)
	}
}
