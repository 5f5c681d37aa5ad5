package test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/messagebus/messagebus/server"
)

// Basic authentication with Pulsar's conf format: the official client's
// AuthenticationBasic on the binary protocol and on HTTP lookups, and
// Basic credentials on the admin API.
func TestBasicAuthentication(t *testing.T) {
	conf := filepath.Join(t.TempDir(), ".htpasswd")
	// htpasswd -m: admin / 123456 (the line of pulsar-client-go's
	// integration-tests/conf/.htpasswd); reader / s3cret as $6$ crypt.
	if err := os.WriteFile(conf, []byte("admin:$apr1$FG4AO6aX$KGYPuMoLUou3i6vUkPUUf.\n"+
		"reader:$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, server.Options{Security: server.Security{BasicAuthConf: conf, SuperuserRoles: []string{"admin"}}})
	basic := func(user, pass string) pulsar.Authentication {
		a, err := pulsar.NewAuthenticationBasic(user, pass)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, url := range []string{s.BrokerURL(), s.WebURL()} { // binary lookups, then HTTP lookups
		c := clientWith(t, pulsar.ClientOptions{URL: url, Authentication: basic("admin", "123456")})
		if err := canProduce(t, c, uniqueTopic(t)); err != nil {
			t.Fatalf("admin over %s: %v", url, err)
		}
		bad := clientWith(t, pulsar.ClientOptions{URL: url, Authentication: basic("admin", "654321")})
		if err := canProduce(t, bad, uniqueTopic(t)); err == nil {
			t.Fatalf("a wrong password over %s was accepted", url)
		}
	}
	// reader authenticates but has no grant.
	if err := canProduce(t, clientWith(t, pulsar.ClientOptions{URL: s.BrokerURL(), Authentication: basic("reader", "s3cret")}), uniqueTopic(t)); err == nil {
		t.Fatal("reader without a grant could produce")
	}

	for _, c := range []struct {
		user, pass string
		want       int
	}{{"admin", "123456", http.StatusOK}, {"admin", "nope", http.StatusUnauthorized}, {"reader", "s3cret", http.StatusForbidden}} {
		req, _ := http.NewRequest("GET", s.WebURL()+"/admin/v2/tenants", nil)
		req.SetBasicAuth(c.user, c.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("GET /admin/v2/tenants as %s/%s: %d, want %d", c.user, c.pass, resp.StatusCode, c.want)
		}
	}
	if v := metricValue(t, s.WebURL(), `pulsar_authentication_success_total{auth_method="basic"}`); v < 2 {
		t.Fatalf(`pulsar_authentication_success_total{auth_method="basic"} = %v`, v)
	}
}

// A conf that cannot be read or holds an unsupported hash stops startup.
func TestBasicAuthConfRefused(t *testing.T) {
	conf := filepath.Join(t.TempDir(), ".htpasswd")
	if err := os.WriteFile(conf, []byte("old:abJnggxhB/yWI\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startFails(t, "--basic-auth-conf", conf)
	if want := `basic authentication: basic auth conf line 1 (user "old"): hash scheme not supported`; !strings.Contains(out, want) {
		t.Fatalf("startup output %q, want %q", out, want)
	}
}
