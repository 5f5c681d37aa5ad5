package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/auth/token"
	"github.com/messagebus/messagebus/internal/testutil/oidcprovider"
	"github.com/messagebus/messagebus/internal/testutil/ststest"
	"github.com/messagebus/messagebus/internal/testutil/vaulttest"
	"github.com/messagebus/messagebus/server"
)

// accessEnv is a broker with the access control plane, a real OpenID
// provider, and the in-test Vault and STS endpoints (no real Vault or STS
// runs here).
type accessEnv struct {
	s        *server.Server
	oidc     *oidcprovider.Provider
	vault    *vaulttest.Server
	sts      *ststest.Server
	platform string // a superuser token
	logs     *syncBuffer
}

const vaultRootToken = "test-vault-token"

func newAccessEnv(t *testing.T, tokenTTL time.Duration) *accessEnv {
	t.Helper()
	return newAccessEnvWith(t, tokenTTL, nil)
}

// newAccessEnvWith is newAccessEnv with the server's options changed by tune.
func newAccessEnvWith(t *testing.T, tokenTTL time.Duration, tune func(*server.Options)) *accessEnv {
	t.Helper()
	e := &accessEnv{oidc: oidcprovider.Start(t), vault: vaulttest.New(t, vaultRootToken), sts: ststest.New(t), logs: &syncBuffer{}}
	e.sts.AddCredentials("AKIDEXAMPLE", "aws-test-secret", "arn:aws:sts::123456789012:assumed-role/billing/session-1")
	keyFile, key := secretKey(t)
	opts := server.Options{
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Security: server.Security{AuthTokenSecretKey: keyFile, SuperuserRoles: []string{"platform"}},
		Access: server.Access{
			GRPCAddr:             "127.0.0.1:0",
			TokenTTL:             tokenTTL,
			OIDCIssuers:          []string{e.oidc.Issuer},
			OIDCLoginClientID:    "mb-cli",
			OIDCWorkloadAudience: "messagebus",
			OIDCClockSkew:        time.Millisecond, // the expiry test waits for exp itself
			AWSEnabled:           true,
			AWSSTSEndpoint:       e.sts.Endpoint(),
			AWSRegion:            "us-east-1",
			VaultAddr:            e.vault.URL,
			VaultToken:           vaultRootToken,
			VaultRefreshInterval: 100 * time.Millisecond,
		},
	}
	if tune != nil {
		tune(&opts)
	}
	e.s = startServer(t, opts)
	e.platform = signToken(t, key, "platform", time.Time{})
	return e
}

// access runs `mb access` against the env as the holder of tok.
func (e *accessEnv) access(t *testing.T, tok string, args ...string) cliResult {
	t.Helper()
	base := []string{"access", "--access-url", e.s.GRPCAddr()}
	if tok != "" {
		base = append(base, "--auth-token", tok)
	}
	return runCLI(t, "", append(base, args...)...)
}

// workloadToken writes a workload's OIDC token to a file, as a projected
// service-account token would be.
func (e *accessEnv) workloadToken(t *testing.T, client, secret, audience string) string {
	t.Helper()
	tok, err := e.oidc.ClientCredentialsToken(context.Background(), client, secret, audience)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), client+".jwt")
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var urlLine = regexp.MustCompile(`(?m)^(https?://\S+)$`)

// login runs `mb access login` as user, playing the browser with the
// provider's own pages, and returns the export line and the config dir.
func (e *accessEnv) login(t *testing.T, tenant, user string, device bool) (cliResult, string) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"access", "--access-url", e.s.GRPCAddr(), "login", "--tenant", tenant, "--config-dir", dir, "--no-browser"}
	if device {
		args = append(args, "--device")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := cliCommand(ctx, args...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(stderrPipe, &stderr))
	var browserErr error
	for sc.Scan() {
		line := sc.Text()
		if device {
			if m := regexp.MustCompile(`enter the code (\S+)`).FindStringSubmatch(line); m != nil {
				browserErr = e.oidc.ApproveDevice(ctx, m[1], user)
				break
			}
		} else if m := urlLine.FindStringSubmatch(line); m != nil {
			browserErr = e.oidc.Login(ctx, m[1], user)
			break
		}
	}
	io.Copy(io.Discard, io.TeeReader(stderrPipe, &stderr)) // until the command exits
	err = cmd.Wait()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if browserErr != nil && r.code == 0 {
		t.Fatalf("browser step failed but login succeeded: %v", browserErr)
	}
	return r, dir
}

func TestAccessTenantLoginAndAudit(t *testing.T) {
	e := newAccessEnv(t, time.Hour)

	// 1. The platform team creates a tenant for a team's group.
	e.access(t, e.platform, "create-tenant", "--tenant", "new_team", "--groups", "new_team_eng").ok(t)
	e.access(t, e.platform, "create-tenant", "--tenant", "new_team", "--groups", "x").fails(t, "already exists")
	e.access(t, "", "create-tenant", "--tenant", "sneaky", "--groups", "x").fails(t, "unauthenticated")
	e.access(t, e.platform, "create-tenant", "--tenant", "bad/name", "--groups", "x").fails(t, "invalid")
	e.access(t, e.platform, "create-tenant", "--tenant", "nogroups").fails(t, `required flag(s) "groups" not set`)
	if out := e.access(t, e.platform, "list-tenants").ok(t); !strings.Contains(out, "new_team") || !strings.Contains(out, "new_team_eng") {
		t.Fatalf("list-tenants:\n%s", out)
	}
	// The tenant names the cluster, as the admin API requires of any tenant.
	var created struct {
		AdminRoles      []string `json:"adminRoles"`
		AllowedClusters []string `json:"allowedClusters"`
	}
	adminCLI(t, e.s, "--auth-token", e.platform, "-o", "json", "tenants", "get", "new_team").jsonOf(t, &created)
	if fmt.Sprint(created.AllowedClusters) != "[standalone]" || fmt.Sprint(created.AdminRoles) != "[new_team.admin]" {
		t.Fatalf("tenant made by create-tenant: %+v", created)
	}
	adminList := adminCLI(t, e.s, "--auth-token", e.platform, "tenants", "list").ok(t)
	if strings.Contains(adminList, "bad/name") || strings.Contains(adminList, "nogroups") || strings.Contains(adminList, "sneaky") {
		t.Fatalf("refused creations left tenants behind:\n%s", adminList)
	}
	adminCLI(t, e.s, "--auth-token", e.platform, "namespaces", "list", "new_team").ok(t)

	// 2. A member of the group logs in with the browser and gets a token
	// administering that tenant only; the config it writes works as is.
	r, dir := e.login(t, "new_team", "alice", false)
	exports := r.ok(t)
	if !strings.HasPrefix(exports, "export PULSAR_CLIENT_CONF="+dir) || !strings.Contains(exports, "MB_AUTH_TOKEN_FILE="+filepath.Join(dir, "token")) {
		t.Fatalf("export line %q", exports)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "client.conf"))
	if err != nil || !strings.Contains(string(conf), "authPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken") ||
		!strings.Contains(string(conf), "brokerServiceUrl=pulsar://") || !strings.Contains(string(conf), "authParams=file://"+dir+"/token") {
		t.Fatalf("client.conf: %v\n%s", err, conf)
	}
	tokenFile := filepath.Join(dir, "token")
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	whoami := runCLI(t, "", "access", "--access-url", e.s.GRPCAddr(), "--auth-token-file", tokenFile, "whoami", "-o", "json")
	var who struct {
		Role    string   `json:"role"`
		AdminOf []string `json:"adminOf"`
	}
	whoami.jsonOf(t, &who)
	if who.Role != "new_team.admin" || len(who.AdminOf) != 1 || who.AdminOf[0] != "new_team" {
		t.Fatalf("whoami after login: %+v", who)
	}
	loginTok := strings.TrimSpace(readFile(t, tokenFile))
	adminCLI(t, e.s, "--auth-token", loginTok, "namespaces", "create", "new_team/orders").ok(t)
	adminCLI(t, e.s, "--auth-token", loginTok, "namespaces", "create", "public/mine").fails(t, "not authorized")
	e.access(t, loginTok, "create-tenant", "--tenant", "more", "--groups", "x").fails(t, "not a superuser")

	// The device flow, for headless machines.
	r, _ = e.login(t, "new_team", "alice", true)
	r.ok(t)
	// Someone outside the tenant's groups is refused, with nothing written.
	r, dir = e.login(t, "new_team", "bob", false)
	loginFails(t, r, "not a member")
	if _, err := os.Stat(filepath.Join(dir, "token")); err == nil {
		t.Fatal("a refused login wrote a token")
	}
	r, _ = e.login(t, "no_such_tenant", "alice", false)
	loginFails(t, r, "not managed")

	// 6. Audit: who did what, newest first; tenant admins see their tenant's.
	var audit struct {
		Records []struct{ Actor, Action, Tenant string } `json:"records"`
	}
	e.access(t, e.platform, "audit", "-o", "json").jsonOf(t, &audit)
	actions := map[string]string{}
	for _, rec := range audit.Records {
		actions[rec.Action] = rec.Actor
	}
	if actions["create-tenant"] != "platform" || !strings.Contains(actions["login"], "alice") || actions["login-refused"] == "" {
		t.Fatalf("audit records: %+v", audit.Records)
	}
	e.access(t, loginTok, "audit", "-o", "json").jsonOf(t, &audit)
	for _, rec := range audit.Records {
		if rec.Tenant != "new_team" {
			t.Fatalf("tenant admin sees another tenant's record: %+v", rec)
		}
	}
	e.access(t, loginTok, "audit", "--tenant", "public").fails(t, "does not administer")
	e.assertNoTokensLogged(t, loginTok, e.platform)
}

func TestAccessWorkloadRolesAndCredentials(t *testing.T) {
	e := newAccessEnv(t, 6*time.Second)
	e.access(t, e.platform, "create-tenant", "--tenant", "my_team", "--groups", "my_team_eng").ok(t)
	e.access(t, e.platform, "create-tenant", "--tenant", "other_team", "--groups", "other_team").ok(t)
	adminCLI(t, e.s, "--auth-token", e.platform, "namespaces", "create", "my_team/private").ok(t)

	// 3. Associate identities with tenant-prefixed roles (the superuser acts
	// as a tenant admin here; login is covered above).
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-a", "--role", "my_app",
		"--actions", "produce,consume", "--namespace", "default", "--vault").ok(t)
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "arn:aws:iam::123456789012:role/billing",
		"--role", "billing", "--actions", "produce").ok(t)
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-b", "--role", "other_team.app").fails(t, "prefix of another tenant")
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-b", "--role", "app", "--issuer", "https://evil.example").fails(t, "not trusted")
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-b", "--role", "admin").fails(t, "reserved")
	e.access(t, e.platform, "associate-role", "--tenant", "my_team", "--identity", "workload-b", "--role", "app", "--actions", "produce", "--namespace", "other_team/default").fails(t, "not in tenant")
	e.access(t, e.platform, "associate-role", "--tenant", "nope", "--identity", "workload-b", "--role", "app").fails(t, "does not exist")
	var roles struct {
		Associations []struct{ Role, Subject, VaultPath string } `json:"associations"`
	}
	e.access(t, e.platform, "list-roles", "--tenant", "my_team", "-o", "json").jsonOf(t, &roles)
	if len(roles.Associations) != 2 {
		t.Fatalf("list-roles after refused associations: %+v", roles.Associations)
	}
	var vaultPath string
	for _, a := range roles.Associations {
		if a.Role == "my_team.my_app" {
			vaultPath = a.VaultPath
		}
	}
	if vaultPath == "" {
		t.Fatalf("no vault path: %+v", roles.Associations)
	}

	// 4. The workload exchanges its identity for a token and uses it with the
	// official client, within its grants only.
	idFile := e.workloadToken(t, "workload-a", "secret-a", "messagebus")
	tok := strings.TrimSpace(e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app", "--identity-token-file", idFile).ok(t))
	if v, err := decodeRole(tok); err != nil || v != "my_team.my_app" {
		t.Fatalf("issued token role %q, %v", v, err)
	}
	c := tokenClient(t, e.s.BrokerURL(), tok)
	if err := canProduce(t, c, "persistent://my_team/default/orders"); err != nil {
		t.Fatalf("producing with fetched credentials: %v", err)
	}
	if err := canConsume(t, c, "persistent://my_team/default/orders", "s"); err != nil {
		t.Fatalf("consuming with fetched credentials: %v", err)
	}
	expectRefused(t, canProduce(t, c, "persistent://my_team/private/orders"), "outside the granted namespace")
	expectRefused(t, canProduce(t, c, "persistent://other_team/default/orders"), "another tenant")

	// Identities that must not get a token.
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app", "--identity-token-file",
		e.workloadToken(t, "workload-b", "secret-b", "messagebus")).fails(t, "not associated")
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app", "--identity-token-file",
		e.workloadToken(t, "workload-a", "secret-a", "someone-else")).fails(t, "audience")
	e.access(t, "", "creds", "--tenant", "other_team", "--role", "my_app", "--identity-token-file", idFile).fails(t, "not associated")
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "other_team.my_app", "--identity-token-file", idFile).fails(t, "prefix of another tenant")
	untrusted := oidcprovider.Start(t)
	utok, err := untrusted.ClientCredentialsToken(context.Background(), "workload-a", "secret-a", "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	utokFile := filepath.Join(t.TempDir(), "untrusted.jwt")
	os.WriteFile(utokFile, []byte(utok), 0o600)
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app", "--identity-token-file", utokFile).fails(t, "untrusted issuer")
	short, err := e.oidc.ShortLivedToken(context.Background(), "messagebus")
	if err != nil {
		t.Fatal(err)
	}
	shortFile := filepath.Join(t.TempDir(), "short.jwt")
	os.WriteFile(shortFile, []byte(short), 0o600)
	waitUntilExpired(t, short)
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app", "--identity-token-file", shortFile).fails(t, "expired")

	// An AWS workload proves its IAM role with a signed GetCallerIdentity.
	awsRun := func(secret string) cliResult {
		cmd := []string{"access", "--access-url", e.s.GRPCAddr(), "creds", "--tenant", "my_team", "--role", "billing", "--aws"}
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		t.Setenv("AWS_REGION", "us-east-1")
		t.Setenv("AWS_CONFIG_FILE", os.DevNull)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		return runCLI(t, "", cmd...)
	}
	awsTok := strings.TrimSpace(awsRun("aws-test-secret").ok(t))
	if v, _ := decodeRole(awsTok); v != "my_team.billing" {
		t.Fatalf("AWS token role %q", v)
	}
	awsRun("wrong-secret").fails(t, "")

	// --watch keeps a file fresh before the token expires (TTL 6s here).
	out := filepath.Join(t.TempDir(), "token")
	ctx, cancel := context.WithCancel(context.Background())
	watch := cliCommand(ctx, "access", "--access-url", e.s.GRPCAddr(), "creds", "--tenant", "my_team", "--role", "my_app",
		"--identity-token-file", idFile, "--watch", "--out", out)
	var watchErr syncBuffer
	watch.Stderr = &watchErr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	var waitOnce sync.Once
	stopWatch := func() { waitOnce.Do(func() { cancel(); watch.Wait() }) }
	defer stopWatch()
	var first string
	eventually(t, "the first token in the watched file", func() bool { first = readFileIfAny(out); return first != "" })
	firstExp := tokenExpiry(t, first)
	var second string
	eventually(t, "a fresh token before the first expires", func() bool {
		second = readFileIfAny(out)
		return second != "" && second != first
	})
	if !time.Now().Before(firstExp) {
		t.Fatalf("renewed only after expiry (%v)", firstExp)
	}
	if tokenExpiry(t, second).Before(firstExp) {
		t.Fatal("renewed token expires earlier than the old one")
	}
	stopWatch()

	// 5. Delivery to Vault: the server keeps the association's token fresh
	// there, and creds can read it.
	eventually(t, "the token delivered to Vault", func() bool { return e.vault.Data("secret/" + vaultPath)["token"] != nil })
	firstVersion := e.vault.Version("secret/" + vaultPath)
	vtok := strings.TrimSpace(e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app",
		"--vault-addr", e.vault.URL, "--vault-token", vaultRootToken, "--identity", "workload-a", "--issuer", e.oidc.Issuer).ok(t))
	if v, _ := decodeRole(vtok); v != "my_team.my_app" {
		t.Fatalf("Vault token role %q", v)
	}
	if err := canProduce(t, tokenClient(t, e.s.BrokerURL(), vtok), "persistent://my_team/default/v"); err != nil {
		t.Fatalf("producing with the Vault token: %v", err)
	}
	eventually(t, "the Vault token refreshed", func() bool { return e.vault.Version("secret/"+vaultPath) > firstVersion })
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app",
		"--vault-addr", e.vault.URL, "--vault-token", "wrong", "--vault-path", vaultPath).fails(t, "")

	// Removing the association stops credentials and revokes the grants.
	e.access(t, e.platform, "remove-role", "--tenant", "my_team", "--identity", "workload-a", "--role", "my_app").ok(t)
	e.access(t, "", "creds", "--tenant", "my_team", "--role", "my_app", "--identity-token-file", idFile).fails(t, "not associated")
	e.assertNoTokensLogged(t, tok, awsTok, vtok, e.platform)
}

// loginFails checks a failed login: its last line is the reason (the
// login URL comes before it).
func loginFails(t *testing.T, r cliResult, want string) {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stderr, "\nmb: ") || !strings.Contains(r.stderr, want) {
		t.Fatalf("login: exit %d, stderr %q, want failure %q", r.code, r.stderr, want)
	}
}

// assertNoTokensLogged checks the server's debug log for credentials.
func (e *accessEnv) assertNoTokensLogged(t *testing.T, toks ...string) {
	t.Helper()
	logs := e.logs.String()
	for _, tok := range toks {
		if tok != "" && strings.Contains(logs, tok) {
			t.Fatal("a token appears in the server log")
		}
	}
	if strings.Contains(logs, "aws-test-secret") || strings.Contains(logs, vaultRootToken) {
		t.Fatal("a secret appears in the server log")
	}
}

func decodeRole(tok string) (string, error) {
	_, claims, err := token.Decode(tok)
	if err != nil {
		return "", err
	}
	s, _ := claims["sub"].(string)
	return s, nil
}

func tokenExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	_, claims, err := token.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	n, err := claims["exp"].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(n, 0)
}

// waitUntilExpired waits for a token's exp to pass: expiry is a point on
// the clock, there is no event to await.
func waitUntilExpired(t *testing.T, tok string) {
	t.Helper()
	time.Sleep(time.Until(tokenExpiry(t, tok).Add(time.Second)))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFileIfAny(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func TestAccessJSONOverHTTP(t *testing.T) {
	e := newAccessEnv(t, time.Hour)
	post := func(method, tok, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.s.WebURL()+"/access/v1/"+method, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := post("CreateTenant", e.platform, `{"tenant":"rest_team","groups":["rest_eng"]}`); code != 200 || out["name"] != "rest_team" {
		t.Fatalf("CreateTenant: %d %v", code, out)
	}
	if code, out := post("WhoAmI", e.platform, `{}`); code != 200 || out["role"] != "platform" || out["superuser"] != true {
		t.Fatalf("WhoAmI: %d %v", code, out)
	}
	if code, out := post("GetConfig", "", ``); code != 200 || out["oidcIssuer"] != e.oidc.Issuer {
		t.Fatalf("GetConfig (public): %d %v", code, out)
	}
	for _, c := range []struct {
		method, tok, body string
		code              int
		want              string
	}{
		{"WhoAmI", "", `{}`, 401, "credentials are required"},
		{"CreateTenant", e.platform, `{"tenant":"rest_team","groups":["x"]}`, 409, "already exists"},
		{"CreateTenant", e.platform, `{"tenant":`, 400, "invalid JSON"},
		{"CreateTenant", e.platform, `{"tenant":"t2"}`, 400, "group"},
		{"AssociateRole", e.platform, `{"tenant":"rest_team","identity":"w","role":"other.x"}`, 403, "prefix of another tenant"},
		{"NoSuchMethod", e.platform, `{}`, 404, "no access method"},
	} {
		code, out := post(c.method, c.tok, c.body)
		if code != c.code || !strings.Contains(fmt.Sprint(out["reason"]), c.want) {
			t.Errorf("%s %s: %d %v, want %d %q", c.method, c.body, code, out, c.code, c.want)
		}
	}
	if resp, err := http.Get(e.s.WebURL() + "/access/v1/WhoAmI"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp, err)
	}
}
