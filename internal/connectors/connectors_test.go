package connectors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/access/vault"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/testutil/vaulttest"
)

// secretSettings is a test type with a secret setting.
type secretSettings struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func init() {
	register(&Builtin{Name: "test-secret", Kind: KindSource, SecretKeys: []string{"password"},
		Settings: func() any { return &secretSettings{} }, NewSource: func(any) Source { return nil }})
}

func sourceConfig(typ string, configs map[string]any) Config {
	return Config{Tenant: "public", Namespace: "default", Name: "s1", Archive: "builtin://" + typ,
		TopicName: "persistent://public/default/out", Configs: configs}
}

func TestConfigChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind Kind
		cfg  Config
		want string
	}{
		{"no type", KindSource, Config{Tenant: "public", Namespace: "default", Name: "x", TopicName: "t"}, "type is missing"},
		{"package", KindSource, Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "/tmp/x.nar", TopicName: "t"}, "only built-in"},
		{"unknown type", KindSource, sourceConfig("nope", nil), `no built-in source of type "nope"`},
		{"no topic", KindSource, Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "builtin://data-generator"}, "topicName is required"},
		{"unknown key", KindSource, sourceConfig("data-generator", map[string]any{"rate": 3}), `unknown field "rate"`},
		{"bad value", KindSource, sourceConfig("data-generator", map[string]any{"count": -1}), "must not be negative"},
		{"bad guarantee", KindSource, func() Config {
			c := sourceConfig("data-generator", nil)
			c.ProcessingGuarantees = "EFFECTIVELY_ONCE"
			return c
		}(), "ATLEAST_ONCE"},
		{"plain secret", KindSource, sourceConfig("test-secret", map[string]any{"password": "hunter2"}), `config "password" is a secret`},
		{"bad secret ref", KindSource, func() Config {
			c := sourceConfig("test-secret", nil)
			c.Secrets = map[string]string{"password": "hunter2"}
			return c
		}(), "want a reference"},
		{"sink without inputs", KindSink, Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "builtin://file",
			Configs: map[string]any{"path": "/tmp/x"}}, "inputs or topicsPattern"},
		{"sink with topicName", KindSink, Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "builtin://file",
			TopicName: "t", Inputs: []string{"t"}, Configs: map[string]any{"path": "/tmp/x"}}, "source field"},
		{"sink bad pattern", KindSink, Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "builtin://file",
			TopicsPattern: "(", Configs: map[string]any{"path": "/tmp/x"}}, "topicsPattern"},
		{"sink no path", KindSink, Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "builtin://file",
			Inputs: []string{"t"}}, "path is required"},
		{"parallel not allowed", KindSource, func() Config {
			c := sourceConfig("test-secret", nil)
			c.Parallelism = 2
			return c
		}(), "one instance only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.normalize(tc.kind)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	ok := Config{Tenant: "public", Namespace: "default", Name: "x", Archive: "builtin://file", Inputs: []string{"t"},
		Configs: map[string]any{"path": "/tmp/x"}}
	if err := ok.normalize(KindSink); err != nil {
		t.Fatal(err)
	}
	if ok.SourceSubscriptionName != "public/default/x" || ok.SourceSubscriptionPosition != "Earliest" || ok.Parallelism != 1 {
		t.Fatalf("defaults %+v", ok)
	}
}

func TestSecretReferencesResolved(t *testing.T) {
	b, _ := builtin(KindSource, "test-secret")
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MB_TEST_SECRET_USER", "alice")
	c := sourceConfig("test-secret", map[string]any{"password": "file:" + file})
	c.Secrets = map[string]string{"user": "env:MB_TEST_SECRET_USER"}
	if err := c.normalize(KindSource); err != nil {
		t.Fatal(err)
	}
	got, err := resolvedConfigs(context.Background(), b, &c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got["password"] != "from-file" || got["user"] != "alice" {
		t.Fatalf("resolved %v", got)
	}
	if c.Configs["password"] != "file:"+file {
		t.Fatal("the stored config must keep the reference")
	}
	c.Secrets = map[string]string{"user": "env:MB_TEST_SECRET_UNSET"}
	if _, err := resolvedConfigs(context.Background(), b, &c, nil); err == nil || !strings.Contains(err.Error(), "MB_TEST_SECRET_UNSET is not set") {
		t.Fatalf("err %v", err)
	}
}

func TestCommitterAdvancesOnlyOverReceivedPrefix(t *testing.T) {
	var c Committer[int]
	d0, d1, d2 := c.Add(0), c.Add(1), c.Add(2)
	if _, ok, _ := c.Committed(); ok {
		t.Fatal("nothing received yet")
	}
	d1(nil)
	if _, ok, _ := c.Committed(); ok {
		t.Fatal("1 received but 0 not: nothing may be committed")
	}
	d0(nil)
	if p, ok, _ := c.Committed(); !ok || p != 1 {
		t.Fatalf("committed %d %v, want 1", p, ok)
	}
	d3 := c.Add(3)
	d2(errors.New("send failed"))
	d3(nil)
	if p, _, err := c.Committed(); p != 1 || err == nil {
		t.Fatalf("after a failed receipt: committed %d err %v, want 1 and the error", p, err)
	}
}

func TestCommitterAddNWaitsForEveryRecordOfTheGroup(t *testing.T) {
	var c Committer[int]
	tx1 := c.AddN(10, 3)
	tx2 := c.AddN(20, 2)
	tx2(nil)
	tx2(nil)
	tx1(nil)
	tx1(nil)
	if _, ok, _ := c.Committed(); ok {
		t.Fatal("one record of the first group has no receipt: nothing may be committed")
	}
	if n := c.InFlight(); n != 2 {
		t.Fatalf("in flight %d, want 2 groups", n)
	}
	tx1(nil)
	if p, ok, _ := c.Committed(); !ok || p != 20 || c.InFlight() != 0 {
		t.Fatalf("committed %d %v in flight %d, want 20 and none", p, ok, c.InFlight())
	}
	tx3 := c.AddN(30, 2)
	tx3(nil)
	tx3(errors.New("send failed"))
	if p, _, err := c.Committed(); p != 20 || err == nil {
		t.Fatalf("after a failed receipt in a group: committed %d err %v, want 20 and the error", p, err)
	}
}

func TestCheckpointsAndRecords(t *testing.T) {
	m, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	cp := newCheckpoints(m, KindSource, "public/default/s1", 0, nil)
	if v, err := cp.Get(ctx, "a/b"); v != nil || err != nil {
		t.Fatalf("absent checkpoint: %q %v", v, err)
	}
	if err := cp.Put(ctx, "a/b", []byte("42")); err != nil {
		t.Fatal(err)
	}
	if v, _ := cp.Get(ctx, "a/b"); string(v) != "42" {
		t.Fatalf("checkpoint %q", v)
	}
	s := store{meta: m}
	cfg := sourceConfig("data-generator", nil)
	if err := s.put(ctx, KindSource, entry{Config: cfg}, meta.NotExists); err != nil {
		t.Fatal(err)
	}
	if err := s.put(ctx, KindSource, entry{Config: cfg}, meta.NotExists); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, _, err := s.get(ctx, KindSink, cfg.FQN()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a source is not a sink: %v", err)
	}
	if err := s.delete(ctx, KindSource, cfg.FQN()); err != nil {
		t.Fatal(err)
	}
	if v, _ := cp.Get(ctx, "a/b"); v != nil {
		t.Fatal("delete must remove the checkpoints")
	}
}

func TestVaultSecretReferences(t *testing.T) {
	b, _ := builtin(KindSource, "test-secret")
	srv := vaulttest.New(t, "root")
	vc, err := vault.New(vault.Config{Address: srv.URL, Token: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Put(context.Background(), "teams/shop/pg", map[string]any{"password": "s3cret", "user": "cdc"}); err != nil {
		t.Fatal(err)
	}
	c := sourceConfig("test-secret", map[string]any{"password": "vault:teams/shop/pg#password"})
	c.Secrets = map[string]string{"user": "vault:/teams/shop/pg/#user"}
	if err := c.normalize(KindSource); err != nil {
		t.Fatal(err)
	}
	got, err := resolvedConfigs(context.Background(), b, &c, vc)
	if err != nil || got["password"] != "s3cret" || got["user"] != "cdc" {
		t.Fatalf("resolved %v, %v", got, err)
	}
	if c.Configs["password"] != "vault:teams/shop/pg#password" {
		t.Fatal("the stored config must keep the reference")
	}
	for ref, want := range map[string]string{
		"vault:teams/shop/pg#nope":  `has no field "nope"`,
		"vault:teams/shop/none#pw":  "secret not found",
		"vault:teams/shop/pg#user ": `has no field "user "`,
	} {
		c.Secrets = map[string]string{"user": ref}
		if _, err := resolvedConfigs(context.Background(), b, &c, vc); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: err %v, want %q", ref, err, want)
		}
	}
	c.Secrets = nil
	if _, err := resolvedConfigs(context.Background(), b, &c, nil); err == nil || !strings.Contains(err.Error(), "no Vault") {
		t.Errorf("without a Vault: %v", err)
	}
	for _, ref := range []string{"vault:teams/pg", "vault:#pw", "vault:a/../b#pw", "vault:a#", "vault:a?x#pw", "env:"} {
		bad := sourceConfig("test-secret", map[string]any{"password": ref})
		if err := bad.normalize(KindSource); err == nil {
			t.Errorf("%q accepted", ref)
		}
	}
}
