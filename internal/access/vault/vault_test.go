package vault_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/access/vault"
	"github.com/messagebus/messagebus/internal/testutil/vaulttest"
)

const (
	rootToken   = "s.test-root-token"
	brokerToken = "eyJhbGciOiJSUzI1NiJ9.broker-token-value"
)

func newClient(t *testing.T, srv *vaulttest.Server, cfg vault.Config) *vault.Client {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = srv.URL
	}
	if cfg.Token == "" {
		cfg.Token = rootToken
	}
	c, err := vault.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestPutGetRoundTrip(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	ctx := context.Background()

	data := map[string]any{"token": brokerToken, "expires_at": "2026-11-25T10:15:00Z"}
	if err := c.Put(ctx, "messagebus/my_team/app/x", data); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := srv.Data("secret/messagebus/my_team/app/x"); got["token"] != brokerToken {
		t.Errorf("stored at secret/data/messagebus/my_team/app/x: %v", got)
	}
	got, err := c.Get(ctx, "/messagebus/my_team/app/x/")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got["token"] != brokerToken || got["expires_at"] != "2026-11-25T10:15:00Z" || len(got) != 2 {
		t.Errorf("Get = %v, want %v", got, data)
	}
}

func TestVersionsIncrease(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	ctx := context.Background()
	for i, tok := range []string{"t1", "t2", "t3"} {
		if err := c.Put(ctx, "p", map[string]any{"token": tok}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if v := srv.Version("secret/p"); v != i+1 {
			t.Errorf("after write %d: version %d", i+1, v)
		}
	}
	got, err := c.Get(ctx, "p")
	if err != nil || got["token"] != "t3" {
		t.Fatalf("Get = %v, %v; want the latest version", got, err)
	}
	if srv.Writes() != 3 {
		t.Errorf("Writes = %d, want 3", srv.Writes())
	}
}

func TestCustomMount(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{Mount: "/kv-team/"})
	if err := c.Put(context.Background(), "a/b", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if srv.Data("kv-team/a/b") == nil || srv.Data("secret/a/b") != nil {
		t.Error("secret not written under the configured mount")
	}
}

func TestWrongToken(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	const wrong = "s.wrong-token-value"
	c := newClient(t, srv, vault.Config{Token: wrong})
	ctx := context.Background()

	err := c.Put(ctx, "p", map[string]any{"token": brokerToken})
	if !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("Put: err = %v, want ErrPermissionDenied", err)
	}
	for _, secret := range []string{wrong, brokerToken} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a secret", err)
		}
	}
	if !strings.Contains(err.Error(), "secret/data/p") {
		t.Errorf("error %q does not name the path", err)
	}
	if _, err := c.Get(ctx, "p"); !errors.Is(err, vault.ErrPermissionDenied) {
		t.Errorf("Get: err = %v, want ErrPermissionDenied", err)
	}
	if srv.Writes() != 0 {
		t.Errorf("a write with a wrong token was stored")
	}
}

func TestEnvironmentTokenIgnored(t *testing.T) {
	// The vault client reads VAULT_TOKEN/VAULT_NAMESPACE by itself; the
	// configured token must win.
	t.Setenv("VAULT_TOKEN", "s.from-environment")
	t.Setenv("VAULT_NAMESPACE", "other-namespace")
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	if err := c.Put(context.Background(), "p", map[string]any{"k": "v"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func TestMissingPath(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	_, err := c.Get(context.Background(), "never/written")
	if !errors.Is(err, vault.ErrNotFound) || !strings.Contains(err.Error(), "secret/data/never/written") {
		t.Fatalf("err = %v, want ErrNotFound naming the path", err)
	}
}

func TestServerDown(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	srv.Close()
	ctx := context.Background()
	err := c.Put(ctx, "p", map[string]any{"token": brokerToken})
	if err == nil || errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("Put: err = %v, want a connection error", err)
	}
	if strings.Contains(err.Error(), brokerToken) || strings.Contains(err.Error(), rootToken) {
		t.Errorf("error %q contains a secret", err)
	}
	if _, err := c.Get(ctx, "p"); err == nil || errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Get: err = %v, want a connection error", err)
	}
}

func TestNewAndPathValidation(t *testing.T) {
	if _, err := vault.New(vault.Config{Token: "t"}); err == nil {
		t.Error("New without address succeeded")
	}
	if _, err := vault.New(vault.Config{Address: "http://127.0.0.1:1"}); err == nil {
		t.Error("New without token succeeded")
	}
	if _, err := vault.New(vault.Config{Address: "http://127.0.0.1:1", Token: "t", Mount: "a/../b"}); err == nil {
		t.Error("New with a '..' mount succeeded")
	}

	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	for _, p := range []string{"", "/", "a/../b", "a//b", "./a", "a?version=1", "a#b", "a%2fb", "a\nb"} {
		if err := c.Put(context.Background(), p, map[string]any{"k": "v"}); err == nil {
			t.Errorf("Put(%q) succeeded", p)
		}
		if _, err := c.Get(context.Background(), p); err == nil || errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Get(%q): err = %v, want a path error", p, err)
		}
	}
	if srv.Writes() != 0 {
		t.Errorf("an invalid path was written")
	}
}

func TestPathFor(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
	const awsKey = "aws:arn:aws:iam::123456789012:role/app"

	p := vault.PathFor("messagebus", "my_team", "my_team.app", awsKey)
	if !regexp.MustCompile(`^messagebus/my_team/my_team\.app/aws_arn_aws_iam_123456789012_role_app-[0-9a-f]{16}$`).MatchString(p) {
		t.Errorf("PathFor = %q", p)
	}
	if again := vault.PathFor("messagebus", "my_team", "my_team.app", awsKey); again != p {
		t.Errorf("PathFor is not deterministic: %q, %q", p, again)
	}

	cases := [][4]string{
		{"", "t", "r", "oidc:https://issuer.example/#system:serviceaccount:ns:app"},
		{"/a//b/", "t", "r", "x"},
		{"p", "..", ".", "../../etc"},
		{"p", "t/../../x", "r?x#y", "a%2f b\n"},
		{"p", "", "", ""},
		{"p", "t", "r", strings.Repeat("long-identity/", 40)},
	}
	for _, c := range cases {
		got := vault.PathFor(c[0], c[1], c[2], c[3])
		if !safe.MatchString(got) {
			t.Errorf("PathFor(%q) = %q: unsafe characters", c, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "." || seg == ".." || len(seg) > 128 {
				t.Errorf("PathFor(%q) = %q: segment %q", c, got, seg)
			}
		}
	}
	if got := vault.PathFor("/a//b/", "t", "r", "x"); !strings.HasPrefix(got, "a/b/t/r/x-") {
		t.Errorf("multi-segment prefix: %q", got)
	}
	if got := vault.PathFor("", "t", "r", "x"); !strings.HasPrefix(got, "t/r/x-") {
		t.Errorf("empty prefix: %q", got)
	}

	// Identities (and tenants or roles) that sanitise to the same text
	// still get distinct paths.
	distinct := map[string][4]string{}
	for _, c := range [][4]string{
		{"p", "t", "r", "oidc:a:b"},
		{"p", "t", "r", "oidc:a/b"},
		{"p", "t", "r", "oidc:a_b"},
		{"p", "t:x", "r", "oidc:a_b"},
		{"p", "t_x", "r", "oidc:a_b"},
		{"p", "t", "r2", "oidc:a_b"},
	} {
		got := vault.PathFor(c[0], c[1], c[2], c[3])
		if prev, dup := distinct[got]; dup {
			t.Errorf("PathFor(%q) and PathFor(%q) are both %q", prev, c, got)
		}
		distinct[got] = c
	}
}

// TestPathForRoundTrip writes to a derived path through the client.
func TestPathForRoundTrip(t *testing.T) {
	srv := vaulttest.New(t, rootToken)
	c := newClient(t, srv, vault.Config{})
	p := vault.PathFor("messagebus", "my_team", "my_team.app", "oidc:https://issuer.example#system:serviceaccount:ns:app")
	if err := c.Put(context.Background(), p, map[string]any{"token": brokerToken}); err != nil {
		t.Fatalf("Put(%q): %v", p, err)
	}
	if srv.Data("secret/" + p)["token"] != brokerToken {
		t.Errorf("not stored at secret/data/%s", p)
	}
}
