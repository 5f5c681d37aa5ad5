package main

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/auth/token"
)

// runRootIn runs the mb command tree in-process with stdin.
func runRootIn(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetIn(stdin)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runRoot(t, args...)
	if err != nil {
		t.Fatalf("mb %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func showToken(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	var shown struct{ Header, Claims map[string]any }
	out := mustRun(t, "tokens", "show", tok)
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("show output %q: %v", out, err)
	}
	return shown.Header, shown.Claims
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestTokensRoundTripAllAlgorithms(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.key")
	mustRun(t, "tokens", "create-secret-key", "--output", secret)
	if raw, _ := os.ReadFile(secret); len(raw) != token.SecretKeyLength || mode(t, secret) != 0o600 {
		t.Fatalf("secret key: %d bytes, mode %v", len(raw), mode(t, secret))
	}
	type pair struct{ alg, sign, verify, verifyFlag string }
	pairs := []pair{{token.HS256, "--secret-key=" + secret, secret, "--secret-key"}}
	for _, kp := range []struct{ alg, format string }{{"RS256", "pem"}, {"ES256", "der"}} {
		priv := filepath.Join(dir, kp.alg+".key")
		pub := filepath.Join(dir, kp.alg+".pub")
		mustRun(t, "tokens", "create-key-pair", "--algorithm", kp.alg, "--format", kp.format,
			"--output-private-key", priv, "--output-public-key", pub)
		if mode(t, priv) != 0o600 {
			t.Errorf("%s private key mode %v", kp.alg, mode(t, priv))
		}
		b, _ := os.ReadFile(pub)
		if isPEM := bytes.HasPrefix(b, []byte("-----BEGIN PUBLIC KEY-----")); isPEM != (kp.format == "pem") {
			t.Errorf("%s public key in %s: %q...", kp.alg, kp.format, b[:10])
		}
		pairs = append(pairs, pair{kp.alg, "--private-key=file://" + priv, pub, "--public-key"})
	}

	for _, p := range pairs {
		tok := strings.TrimSpace(mustRun(t, "tokens", "create", p.sign, "--subject", "app-"+p.alg, "--expiry-time", "30d", "--headers", "kid=k-1"))
		header, claims := showToken(t, tok)
		if header["alg"] != p.alg || header["kid"] != "k-1" || len(header) != 2 || claims["sub"] != "app-"+p.alg {
			t.Errorf("%s: header %v claims %v", p.alg, header, claims)
		}
		exp := time.Unix(int64(claims["exp"].(float64)), 0)
		if d := time.Until(exp); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour {
			t.Errorf("%s: exp in %v, want 30d", p.alg, d)
		}

		out := mustRun(t, "tokens", "validate", p.verifyFlag, p.verify, tok)
		if !strings.Contains(out, "role: app-"+p.alg+"\n") || !strings.Contains(out, "expires: "+exp.UTC().Format(time.RFC3339)) {
			t.Errorf("%s validate: %q", p.alg, out)
		}

		// The same token from a file, from "-" and from --stdin.
		file := filepath.Join(dir, p.alg+".token")
		os.WriteFile(file, []byte(tok+"\n"), 0o600)
		for _, args := range [][]string{{"--token-file", file}, {"-"}, {"--stdin"}} {
			full := append([]string{"tokens", "validate", p.verifyFlag, p.verify}, args...)
			out, err := runRootIn(t, strings.NewReader(tok+"\n"), full...)
			if err != nil || !strings.Contains(out, "role: app-"+p.alg) {
				t.Errorf("%s validate %v: %q %v", p.alg, args, out, err)
			}
		}

		// No expiry: never.
		forever := strings.TrimSpace(mustRun(t, "tokens", "create", p.sign, "-s", "daemon"))
		if _, claims := showToken(t, forever); claims["exp"] != nil {
			t.Errorf("%s: exp without --expiry-time: %v", p.alg, claims)
		}
		if out := mustRun(t, "tokens", "validate", p.verifyFlag, p.verify, forever); out != "role: daemon\nexpires: never\n" {
			t.Errorf("%s validate: %q", p.alg, out)
		}
	}

	// Every token fails against every other algorithm's key.
	for _, signer := range pairs {
		tok := strings.TrimSpace(mustRun(t, "tokens", "create", signer.sign, "-s", "x"))
		for _, verifier := range pairs {
			if signer.alg == verifier.alg {
				continue
			}
			_, err := runRoot(t, "tokens", "validate", verifier.verifyFlag, verifier.verify, tok)
			if err == nil || !strings.Contains(err.Error(), "signed with "+signer.alg+", want "+verifier.alg) {
				t.Errorf("%s token, %s key: %v", signer.alg, verifier.alg, err)
			}
		}
	}
}

func TestTokensBase64SecretKeyAsDataURL(t *testing.T) {
	out := mustRun(t, "tokens", "create-secret-key", "--base64")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil || len(raw) != token.SecretKeyLength {
		t.Fatalf("--base64 printed %q: %v", out, err)
	}
	url := "data:;base64," + strings.TrimSpace(out)
	tok := strings.TrimSpace(mustRun(t, "tokens", "create", "--secret-key", url, "-s", "alice"))
	// The same key as a raw file, as Pulsar's create-secret-key writes it.
	file := filepath.Join(t.TempDir(), "raw.key")
	os.WriteFile(file, raw, 0o600)
	if out := mustRun(t, "tokens", "validate", "--secret-key", file, tok); !strings.HasPrefix(out, "role: alice\n") {
		t.Fatalf("validate: %q", out)
	}
	// --base64 with --output writes the text, like Pulsar.
	b64file := filepath.Join(t.TempDir(), "b64.key")
	mustRun(t, "tokens", "create-secret-key", "-b", "-o", b64file)
	text, _ := os.ReadFile(b64file)
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text))); err != nil || len(k) != token.SecretKeyLength {
		t.Fatalf("base64 file %q: %v", text, err)
	}
}

func TestTokensExpired(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, token.SecretKeyLength)
	file := filepath.Join(t.TempDir(), "s.key")
	os.WriteFile(file, secret, 0o600)
	tok, err := token.Create(secret, token.Claims{Subject: "alice", ExpiresAt: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = runRoot(t, "tokens", "validate", "--secret-key", file, tok)
	if err == nil || !errors.Is(err, token.ErrExpired) || !strings.HasPrefix(err.Error(), "invalid token: token expired at ") {
		t.Fatalf("expired token: %v", err)
	}
	// show still shows it: it checks nothing.
	if _, claims := showToken(t, tok); claims["sub"] != "alice" {
		t.Fatalf("show: %v", claims)
	}
}

// Pulsar's create-key-pair writes DER; its key files work here, and the
// --signature-algorithm spelling of its flag is accepted.
func TestTokensPulsarKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "my-private.key")
	pub := filepath.Join(dir, "my-public.key")
	mustRun(t, "tokens", "create-key-pair", "--signature-algorithm", "RS256", "--format", "der",
		"--output-private-key", priv, "--output-public-key", pub)
	der, _ := os.ReadFile(pub)
	if _, err := x509.ParsePKIXPublicKey(der); err != nil {
		t.Fatalf("public key is not X.509 DER: %v", err)
	}
	privDER, _ := os.ReadFile(priv)
	if _, err := x509.ParsePKCS8PrivateKey(privDER); err != nil {
		t.Fatalf("private key is not PKCS#8 DER: %v", err)
	}
	tok := strings.TrimSpace(mustRun(t, "tokens", "create", "--private-key", "file://"+priv, "-s", "x", "--signature-algorithm", "RS256"))
	pubURL := "data:;base64," + base64.StdEncoding.EncodeToString(der) // tokenPublicKey=data:... as in broker.conf
	if out := mustRun(t, "tokens", "validate", "--public-key", pubURL, "-a", "RS256", tok); !strings.HasPrefix(out, "role: x\n") {
		t.Fatalf("validate: %q", out)
	}
}

func TestTokensOverwriteNeedsForce(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "s.key")
	os.WriteFile(key, []byte("old"), 0o644)
	if _, err := runRoot(t, "tokens", "create-secret-key", "--output", key); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrote without --force: %v", err)
	}
	if b, _ := os.ReadFile(key); string(b) != "old" {
		t.Fatalf("file changed: %q", b)
	}
	mustRun(t, "tokens", "create-secret-key", "--output", key, "--force")
	if b, _ := os.ReadFile(key); len(b) != token.SecretKeyLength || mode(t, key) != 0o600 {
		t.Fatalf("forced: %d bytes, mode %v", len(b), mode(t, key))
	}
	// A refused key pair writes neither file.
	_, err := runRoot(t, "tokens", "create-key-pair", "--output-private-key", filepath.Join(dir, "new.key"), "--output-public-key", key)
	if err == nil {
		t.Fatal("key pair overwrote a file")
	}
	if _, err := os.Stat(filepath.Join(dir, "new.key")); !os.IsNotExist(err) {
		t.Fatalf("private key written although the pair was refused: %v", err)
	}
}

func TestTokensRejectBadArguments(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "s.key")
	mustRun(t, "tokens", "create-secret-key", "-o", secret)
	priv, pub := filepath.Join(dir, "p.key"), filepath.Join(dir, "p.pub")
	mustRun(t, "tokens", "create-key-pair", "--output-private-key", priv, "--output-public-key", pub)
	good := strings.TrimSpace(mustRun(t, "tokens", "create", "--secret-key", secret, "-s", "alice"))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "."

	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"create-secret-key"}, "--output"},
		{[]string{"create-secret-key", "-o", filepath.Join(dir, "x"), "-a", "HS512"}, "HS256"},
		{[]string{"create-key-pair", "-a", "HS256", "--output-private-key", filepath.Join(dir, "a"), "--output-public-key", filepath.Join(dir, "b")}, "RS256 or ES256"},
		{[]string{"create-key-pair", "--output-private-key", filepath.Join(dir, "a")}, "--output-public-key"},
		{[]string{"create-key-pair", "--output-private-key", filepath.Join(dir, "a"), "--output-public-key", filepath.Join(dir, "a")}, "differ"},
		{[]string{"create-key-pair", "--format", "jwk", "--output-private-key", filepath.Join(dir, "a"), "--output-public-key", filepath.Join(dir, "b")}, "pem or der"},
		{[]string{"create", "-s", "alice"}, "exactly one"},
		{[]string{"create", "--secret-key", secret, "--private-key", priv, "-s", "alice"}, "exactly one"},
		{[]string{"create", "--secret-key", secret}, "--subject"},
		{[]string{"create", "--secret-key", secret, "-s", "a", "-e", "soon"}, "--expiry-time"},
		{[]string{"create", "--secret-key", secret, "-s", "a", "-e", "0"}, "positive"},
		{[]string{"create", "--secret-key", secret, "-s", "a", "-a", "RS256"}, "does not match"},
		{[]string{"create", "--secret-key", secret, "-s", "a", "--headers", "alg=none"}, "alg"},
		{[]string{"create", "--secret-key", filepath.Join(dir, "missing"), "-s", "a"}, "no such file"},
		{[]string{"create", "--private-key", secret, "-s", "a"}, "private key"},
		{[]string{"create", "--secret-key", "data:;base64,c2hvcnQ=", "-s", "a"}, "at least 32"},
		{[]string{"validate", good}, "exactly one"},
		{[]string{"validate", "--secret-key", secret, "--public-key", pub, good}, "exactly one"},
		{[]string{"validate", "--secret-key", secret}, "give the token"},
		{[]string{"validate", "--secret-key", secret, good, "--stdin"}, "give the token"},
		{[]string{"validate", "--secret-key", secret, "not-a-token"}, "malformed"},
		{[]string{"validate", "--secret-key", secret, none}, "algorithm"},
		{[]string{"validate", "--public-key", pub, good}, "signed with HS256, want RS256"},
		{[]string{"validate", "--public-key", secret, good}, "public key"},
		{[]string{"validate", "--secret-key", secret, "--audience", "mb", good}, "audience"},
		{[]string{"validate", "--secret-key", secret, "--role-claim", "role", good}, "no role"},
		{[]string{"validate", "--secret-key", secret, "--token-file", filepath.Join(dir, "missing")}, "read token"},
		{[]string{"show", "x.y"}, "malformed"},
		{[]string{"show"}, "give the token"},
	} {
		_, err := runRootIn(t, strings.NewReader(""), append([]string{"tokens"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// Errors name files and reasons, never token contents or key material.
func TestTokensErrorsHideSecrets(t *testing.T) {
	keyB64 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, token.SecretKeyLength))
	other := bytes.Repeat([]byte{8}, token.SecretKeyLength)
	tok, err := token.Create(other, token.Claims{Subject: "hidden-role"})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"tokens", "validate", "--secret-key", "data:;base64," + keyB64, tok},
		{"tokens", "validate", "--public-key", "data:;base64," + keyB64, tok},
		{"tokens", "create", "--private-key", "data:;base64," + keyB64, "-s", "a"},
		{"tokens", "validate", "--secret-key", "data:;base64," + keyB64, tok[:len(tok)-5] + "!!!!!"},
	} {
		_, err := runRoot(t, args...)
		if err == nil {
			t.Fatalf("%q accepted", args)
		}
		for _, secret := range []string{keyB64, "hidden-role", strings.Split(tok, ".")[1], strings.Split(tok, ".")[2]} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%q: error %q shows %q", args, err, secret)
			}
		}
	}
}
