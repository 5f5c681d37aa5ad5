package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access"
	"github.com/messagebus/messagebus/internal/access/identity"
	"github.com/messagebus/messagebus/internal/auth/token"
	"github.com/messagebus/messagebus/internal/testutil/oidcprovider"
	"github.com/messagebus/messagebus/server"
	"google.golang.org/protobuf/encoding/protojson"
)

// auditRecord is one record of `mb access audit -o json`.
type auditRecord struct {
	Actor, Action, Tenant, Detail          string
	Reason, Identity, Issuer, Role, Source string
	Dropped                                uint32
}

func (e *accessEnv) auditRecords(t *testing.T) []auditRecord {
	t.Helper()
	var out struct {
		Records []auditRecord `json:"records"`
	}
	e.access(t, e.platform, "audit", "--limit", "10000", "-o", "json").jsonOf(t, &out)
	return out.Records
}

// postAccess calls the JSON mapping at base (http:// or https://).
func postAccess(t *testing.T, c *http.Client, base, method, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/access/v1/"+method, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every refused credential request leaves a record with its reason class,
// the identity and issuer it claimed, the tenant and role it asked for and
// the caller's address, whether it came by `mb access` (gRPC) or by the
// JSON mapping; never the token.
func TestAccessRefusalsAudited(t *testing.T) {
	e := newAccessEnv(t, time.Hour)
	e.access(t, e.platform, "create-tenant", "--tenant", "my_team", "--groups", "my_team_eng").ok(t)
	e.access(t, e.platform, "create-tenant", "--tenant", "other_team", "--groups", "other_eng").ok(t)
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-a", "--role", "my_app",
		"--actions", "produce", "--namespace", "default").ok(t)

	ctx := context.Background()
	mint := func(p *oidcprovider.Provider, client, secret, aud string) string {
		tok, err := p.ClientCredentialsToken(ctx, client, secret, aud)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(e.oidc, "workload-a", "secret-a", "messagebus")
	other := mint(e.oidc, "workload-b", "secret-b", "messagebus")
	untrusted := oidcprovider.Start(t)
	// A forged token: workload-a's header and claims under another token's signature.
	forged := good[:strings.LastIndexByte(good, '.')] + other[strings.LastIndexByte(other, '.'):]
	short, err := e.oidc.ShortLivedToken(ctx, "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	iss := e.oidc.Issuer
	cases := []struct {
		name, tok, tenant, role string
		code                    int
		want, reason            string
		identity, issuer, full  string
	}{
		{"wrong audience", mint(e.oidc, "workload-a", "secret-a", "someone-else"), "my_team", "my_app", 401, "audience",
			access.ReasonAudience, "oidc:" + iss + "#workload-a", iss, "my_team.my_app"},
		{"untrusted issuer", mint(untrusted, "workload-a", "secret-a", "messagebus"), "my_team", "my_app", 401, "untrusted issuer",
			access.ReasonUntrustedIssuer, "oidc:" + untrusted.Issuer + "#workload-a", untrusted.Issuer, "my_team.my_app"},
		{"forged signature", forged, "my_team", "my_app", 401, "signed by none of the issuer's published keys",
			access.ReasonSignature, "oidc:" + iss + "#workload-a", iss, "my_team.my_app"},
		{"another tenant's prefix", good, "my_team", "other_team.my_app", 403, "prefix of another tenant",
			access.ReasonForeignRole, "oidc:" + iss + "#workload-a", iss, "other_team.my_app"},
		{"no association", other, "my_team", "my_app", 403, "not associated",
			access.ReasonNoAssociation, "oidc:" + iss + "#workload-b", iss, "my_team.my_app"},
		{"unknown tenant", good, "no_such_team", "my_app", 404, "does not exist",
			access.ReasonUnknownTenant, "oidc:" + iss + "#workload-a", iss, "no_such_team.my_app"},
		{"expired", short, "my_team", "my_app", 401, "expired",
			access.ReasonExpired, "oidc:" + iss + "#workload-short", iss, "my_team.my_app"},
	}
	waitUntilExpired(t, short)
	for _, c := range cases {
		e.access(t, "", "creds", "--tenant", c.tenant, "--role", c.role, "--identity-token-file", writeTemp(t, "id.jwt", c.tok)).fails(t, c.want)
		body := fmt.Sprintf(`{"tenant":%q,"role":%q,"oidcToken":%q}`, c.tenant, c.role, c.tok)
		if code, out := postAccess(t, http.DefaultClient, e.s.WebURL(), "GetCredentials", "", body); code != c.code ||
			!strings.Contains(fmt.Sprint(out["reason"]), c.want) {
			t.Errorf("%s over JSON: %d %v, want %d %q", c.name, code, out, c.code, c.want)
		}
	}
	// A caller with a forged broker token, on a change.
	forgedBearer := signToken(t, []byte(strings.Repeat("k", 32)), "platform", time.Time{})
	e.access(t, forgedBearer, "associate-role", "--tenant", "my_team", "--identity", "w", "--role", "x").fails(t, "signature")
	if code, _ := postAccess(t, http.DefaultClient, e.s.WebURL(), "AssociateRole", forgedBearer, `{"tenant":"my_team","identity":"w","role":"x"}`); code != 401 {
		t.Errorf("AssociateRole with a forged token over JSON: %d", code)
	}

	recs := e.auditRecords(t)
	raw, _ := json.Marshal(recs)
	for _, tok := range []string{good, other, forged, short, forgedBearer} {
		if strings.Contains(string(raw), tok) || strings.Contains(string(raw), tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Fatal("an audit record holds a presented token")
		}
	}
	for _, c := range cases {
		var n int
		for _, r := range recs {
			if r.Action == "credentials-refused" && r.Reason == c.reason && r.Tenant == c.tenant && r.Role == c.full &&
				r.Identity == c.identity && r.Issuer == c.issuer && r.Source == "127.0.0.1" && r.Detail != "" {
				n++
				want := "unauthenticated" // a claim is not an actor
				if c.reason == access.ReasonNoAssociation || c.reason == access.ReasonUnknownTenant {
					want = c.identity // proven; the tenant or the association is missing
				}
				if r.Actor != want {
					t.Errorf("%s: actor %q, want %q", c.name, r.Actor, want)
				}
			}
		}
		if n != 2 { // one by mb access, one by the JSON mapping
			t.Errorf("%s: %d matching audit records, want 2; records:\n%+v", c.name, n, recs)
		}
		series := fmt.Sprintf(`mb_access_refusals_total{reason=%q}`, c.reason)
		if v := metricValue(t, e.s.WebURL(), series); v != 2 {
			t.Errorf("%s = %v, want 2", series, v)
		}
	}
	var forgedCalls int
	for _, r := range recs {
		if r.Action == "associate-role-refused" && r.Reason == access.ReasonUnauthenticated &&
			r.Identity == "platform" && r.Actor == "unauthenticated" && r.Tenant == "my_team" && r.Role == "my_team.x" {
			forgedCalls++
		}
	}
	if forgedCalls != 2 {
		t.Errorf("%d records of the forged caller, want 2: %+v", forgedCalls, recs)
	}
	// Tenant admins see refusals that named their tenant.
	r, _ := e.login(t, "my_team", "alice", false)
	loginFails(t, r, "not a member") // alice is in new_team_eng in the provider's fixtures, not my_team_eng
	recs = e.auditRecords(t)
	var loginRefused bool
	for _, r := range recs {
		loginRefused = loginRefused || (r.Action == "login-refused" && r.Reason == access.ReasonNotMember && r.Tenant == "my_team" &&
			strings.Contains(r.Actor, "alice") && r.Source == "127.0.0.1")
	}
	if !loginRefused {
		t.Errorf("no login-refused record with reason not_member: %+v", recs)
	}
	e.assertNoTokensLogged(t, good, other, forged, short, forgedBearer)
}

// Refusals from one address are recorded up to the burst, the rest counted
// in audit-dropped records and mb_access_audit_dropped_total; another
// address has its own budget.
func TestAccessRefusalAuditRateLimit(t *testing.T) {
	e := newAccessEnvWith(t, time.Hour, func(o *server.Options) {
		o.Access.AuditBurst = 3
		o.Access.AuditRate = 0.0001 // no refill within the test
		o.Access.AuditFlushInterval = 50 * time.Millisecond
	})
	e.access(t, e.platform, "create-tenant", "--tenant", "my_team", "--groups", "my_team_eng").ok(t)
	body := `{"tenant":"my_team","role":"app","oidcToken":"not.a.jwt"}`
	for range 10 {
		if code, _ := postAccess(t, http.DefaultClient, e.s.WebURL(), "GetCredentials", "", body); code != 401 {
			t.Fatalf("garbage token: %d", code)
		}
	}
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "app", "--identity-token-file", writeTemp(t, "id", "not.a.jwt")).fails(t, "invalid")
	fromElsewhere := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	if code, _ := postAccess(t, fromElsewhere, e.s.WebURL(), "GetCredentials", "", body); code != 401 {
		t.Fatalf("garbage token from 127.0.0.2: %d", code)
	}

	var recs []auditRecord
	counts := func() (written map[string]int, dropped map[string]uint32) {
		written, dropped = map[string]int{}, map[string]uint32{}
		for _, r := range recs {
			switch r.Action {
			case "credentials-refused":
				written[r.Source]++
			case "audit-dropped":
				dropped[r.Source] += r.Dropped
			}
		}
		return written, dropped
	}
	eventually(t, "the count of dropped records", func() bool {
		recs = e.auditRecords(t)
		_, dropped := counts()
		return dropped["127.0.0.1"] >= 8
	})
	written, dropped := counts()
	if written["127.0.0.1"] != 3 || dropped["127.0.0.1"] != 8 || written["127.0.0.2"] != 1 || dropped["127.0.0.2"] != 0 {
		t.Fatalf("written %v, dropped %v; want 3 and 8 from 127.0.0.1, 1 and 0 from 127.0.0.2", written, dropped)
	}
	for _, r := range recs {
		if r.Action == "credentials-refused" && r.Reason != access.ReasonInvalid {
			t.Errorf("reason %q, want %q", r.Reason, access.ReasonInvalid)
		}
	}
	if v := metricValue(t, e.s.WebURL(), "mb_access_audit_dropped_total"); v != 8 {
		t.Errorf("mb_access_audit_dropped_total = %v, want 8", v)
	}
	if v := metricValue(t, e.s.WebURL(), `mb_access_refusals_total{reason="invalid_credential"}`); v != 12 {
		t.Errorf("refusals counted: %v, want 12 (dropped records are counted too)", v)
	}
}

// `creds -o json` prints an object, as -o json does elsewhere; the JSON
// mapping answers the same fields.
func TestAccessCredsJSON(t *testing.T) {
	e := newAccessEnv(t, time.Hour)
	e.access(t, e.platform, "create-tenant", "--tenant", "my_team", "--groups", "my_team_eng").ok(t)
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-a", "--role", "my_app",
		"--actions", "produce", "--namespace", "default").ok(t)
	idFile := e.workloadToken(t, "workload-a", "secret-a", "messagebus")
	var got map[string]any
	before := time.Now().Truncate(time.Second)
	e.access(t, "", "creds", "-o", "json", "--tenant", "my_team", "--role", "my_app", "--identity-token-file", idFile).jsonOf(t, &got)
	if len(got) != 4 || got["role"] != "my_team.my_app" || got["tenant"] != "my_team" {
		t.Fatalf("creds -o json: %v", got)
	}
	tok, _ := got["token"].(string)
	if role, err := decodeRole(tok); err != nil || role != "my_team.my_app" {
		t.Fatalf("token in creds -o json: %q %v", role, err)
	}
	exp, err := time.Parse(time.RFC3339, fmt.Sprint(got["expiresAt"]))
	if err != nil || !exp.Equal(tokenExpiry(t, tok)) || exp.Before(before.Add(time.Hour)) {
		t.Fatalf("expiresAt %v (%v), token expires %v", got["expiresAt"], err, tokenExpiry(t, tok))
	}
	if err := canProduce(t, tokenClient(t, e.s.BrokerURL(), tok), "persistent://my_team/default/json"); err != nil {
		t.Fatalf("producing with the token of creds -o json: %v", err)
	}
	body := fmt.Sprintf(`{"tenant":"my_team","role":"my_app","oidcToken":%q}`, readFile(t, idFile))
	code, out := postAccess(t, http.DefaultClient, e.s.WebURL(), "GetCredentials", "", body)
	if code != 200 || out["role"] != "my_team.my_app" || out["tenant"] != "my_team" || out["token"] == nil || out["expiresAt"] == nil {
		t.Fatalf("GetCredentials over JSON: %d %v", code, out)
	}
}

// A token signed by an access signing key that was dropped is refused as
// a token of an unknown key id, by mb access and by the JSON mapping, not
// as a wrong algorithm; the broker refuses it too.
func TestAccessTokenOfDroppedSigningKey(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	for _, k := range []string{oldKey, newKey} {
		runCLI(t, "", "tokens", "create-key-pair", "--algorithm", "ES256", "--output-private-key", k, "--output-public-key", k+".pub").ok(t)
	}
	e := newAccessEnvWith(t, time.Hour, func(o *server.Options) { o.Access.SigningKeys = []string{newKey} })
	old, err := access.LoadSigningKeys([]string{oldKey}, dir)
	if err != nil {
		t.Fatal(err)
	}
	// What the server issued while old.key signed.
	tok, err := token.Create(old[0].Signer, token.Claims{Subject: "platform", KeyID: old[0].KID, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("token key id %q is unknown", old[0].KID)
	r := e.access(t, tok, "whoami")
	r.fails(t, want)
	if strings.Contains(r.stderr, "algorithm") {
		t.Fatalf("refusal mentions the algorithm: %s", r.stderr)
	}
	if code, out := postAccess(t, http.DefaultClient, e.s.WebURL(), "WhoAmI", tok, `{}`); code != 401 || !strings.Contains(fmt.Sprint(out["reason"]), want) {
		t.Fatalf("WhoAmI over JSON: %d %v", code, out)
	}
	adminCLI(t, e.s, "--auth-token", tok, "tenants", "list").fails(t, "is unknown")
	expectRefused(t, canProduce(t, tokenClient(t, e.s.BrokerURL(), tok), "persistent://public/default/x"), "a token of a dropped key")
	var refused bool
	for _, rec := range e.auditRecords(t) {
		refused = refused || (rec.Action == "whoami-refused" && rec.Reason == access.ReasonUnauthenticated && rec.Identity == "platform")
	}
	if !refused {
		t.Fatal("the refused whoami was not audited")
	}
}

// A signed AWS request presented twice is refused the second time as a
// replay (README: "refuses a replayed signature"), and audited as such;
// removing the last association of a role revokes its grants, so the
// token issued before no longer opens producers.
func TestAccessReplayAndRevokedGrants(t *testing.T) {
	e := newAccessEnv(t, time.Hour)
	e.access(t, e.platform, "create-tenant", "--tenant", "my_team", "--groups", "my_team_eng").ok(t)
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "arn:aws:iam::123456789012:role/billing",
		"--role", "billing", "--actions", "produce", "--namespace", "default").ok(t)
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "aws-test-secret"}, nil
	})
	sr, err := identity.SignGetCallerIdentity(context.Background(), creds, e.sts.Endpoint(), "us-east-1", "messagebus", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := protojson.Marshal(&accessv1.GetCredentialsRequest{Tenant: "my_team", Role: "billing",
		Proof: &accessv1.GetCredentialsRequest_Aws{Aws: access.SignedRequestMessage(sr)}})
	if err != nil {
		t.Fatal(err)
	}
	code, out := postAccess(t, http.DefaultClient, e.s.WebURL(), "GetCredentials", "", string(msg))
	if code != 200 || out["role"] != "my_team.billing" {
		t.Fatalf("first presentation: %d %v", code, out)
	}
	tok := out["token"].(string)
	if code, out := postAccess(t, http.DefaultClient, e.s.WebURL(), "GetCredentials", "", string(msg)); code != 401 ||
		!strings.Contains(fmt.Sprint(out["reason"]), "already presented") {
		t.Fatalf("replay: %d %v", code, out)
	}
	var replay bool
	for _, r := range e.auditRecords(t) {
		replay = replay || (r.Action == "credentials-refused" && r.Reason == access.ReasonReplay &&
			r.Identity == "aws-key:AKIDEXAMPLE" && r.Role == "my_team.billing" && r.Source == "127.0.0.1")
	}
	if !replay {
		t.Fatal("the replay was not audited")
	}

	c := tokenClient(t, e.s.BrokerURL(), tok)
	if err := canProduce(t, c, "persistent://my_team/default/a"); err != nil {
		t.Fatalf("producing before removal: %v", err)
	}
	e.access(t, e.platform, "remove-role", "--tenant", "my_team", "--identity", "arn:aws:iam::123456789012:role/billing", "--role", "billing").ok(t)
	expectRefused(t, canProduce(t, c, "persistent://my_team/default/b"), "a role whose last association was removed")
}
