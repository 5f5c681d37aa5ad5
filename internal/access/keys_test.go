package access

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/messagebus/messagebus/internal/auth"
	"github.com/messagebus/messagebus/internal/auth/token"
)

func writeKey(t *testing.T, dir, name string) string {
	t.Helper()
	k, err := token.GenerateKeyPair(token.ES256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := token.MarshalPrivateKey(k, token.PEM)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sign(t *testing.T, k SigningKey, role string) string {
	t.Helper()
	tok, err := token.Create(k.Signer, token.Claims{Subject: role, KeyID: k.KID, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func serviceWith(t *testing.T, keys []SigningKey) *auth.Service {
	t.Helper()
	v, err := Verifiers(keys)
	if err != nil {
		t.Fatal(err)
	}
	return auth.New(auth.Config{KeyedTokens: v})
}

// A rotation lists the new key first: new tokens use it, tokens of the old
// key keep verifying until the old key is dropped from the list.
func TestSigningKeyRotation(t *testing.T) {
	dir := t.TempDir()
	oldFile, newFile := writeKey(t, dir, "old.pem"), writeKey(t, dir, "new.pem")
	before, err := LoadSigningKeys([]string{oldFile}, dir)
	if err != nil {
		t.Fatal(err)
	}
	during, err := LoadSigningKeys([]string{newFile, oldFile}, dir)
	if err != nil {
		t.Fatal(err)
	}
	after, err := LoadSigningKeys([]string{newFile}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if before[0].KID != during[1].KID || during[0].KID == during[1].KID {
		t.Fatalf("kids: before %s, during %s %s", before[0].KID, during[0].KID, during[1].KID)
	}
	oldTok, newTok := sign(t, before[0], "team.app"), sign(t, during[0], "team.app")

	for _, tc := range []struct {
		name      string
		keys      []SigningKey
		tok       string
		wantValid bool
	}{
		{"old token, old key", before, oldTok, true},
		{"old token during rotation", during, oldTok, true},
		{"new token during rotation", during, newTok, true},
		{"new token, old key only", before, newTok, false},
		{"old token after rotation", after, oldTok, false},
	} {
		p, err := serviceWith(t, tc.keys).AuthenticateBearer("Bearer " + tc.tok)
		if tc.wantValid && (err != nil || p.Role != "team.app") {
			t.Errorf("%s: %v %v", tc.name, p, err)
		}
		if !tc.wantValid && !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%s: accepted (%v), want refused", tc.name, p)
		}
		// A token of a key not (or no longer) configured is refused as
		// such, not as a wrong algorithm.
		if !tc.wantValid && (!errors.Is(err, auth.ErrUnknownKeyID) || !strings.Contains(err.Error(), "is unknown") ||
			strings.Contains(err.Error(), "algorithm")) {
			t.Errorf("%s: refused with %v, want an unknown key id", tc.name, err)
		}
	}
}

// Without key files a key is generated once and reused on restart, so
// tokens survive restarts.
func TestGeneratedSigningKeyPersists(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadSigningKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadSigningKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].KID != second[0].KID {
		t.Fatalf("generated key changed across loads: %v %v", first, second)
	}
	if fi, err := os.Stat(filepath.Join(dir, "signing-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
}

// With an HS256 secret configured next to the access keys, a token of a
// dropped access key used to be refused as "signed with ES256, want HS256".
// Pulsar tokens with a kid of their own still verify with the secret.
func TestDroppedKeyNextToSecretKey(t *testing.T) {
	dir := t.TempDir()
	dropped, err := LoadSigningKeys([]string{writeKey(t, dir, "old.pem")}, dir)
	if err != nil {
		t.Fatal(err)
	}
	current, err := LoadSigningKeys([]string{writeKey(t, dir, "new.pem")}, dir)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{7}, 32)
	hs, err := token.NewVerifier(token.Config{SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	keyed, err := Verifiers(current)
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New(auth.Config{Token: hs, KeyedTokens: keyed})
	_, err = a.AuthenticateBearer("Bearer " + sign(t, dropped[0], "team.app"))
	if !errors.Is(err, auth.ErrUnknownKeyID) || strings.Contains(err.Error(), "algorithm") || !strings.Contains(err.Error(), dropped[0].KID) {
		t.Fatalf("token of a dropped key: %v", err)
	}
	pulsarTok, err := token.Create(secret, token.Claims{Subject: "app", KeyID: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.AuthenticateBearer("Bearer " + pulsarTok); err != nil || p.Role != "app" {
		t.Fatalf("HS256 token with its own kid: %v %v", p, err)
	}
	forged, err := token.Create(bytes.Repeat([]byte{8}, 32), token.Claims{Subject: "app", KeyID: "2026-01"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateBearer("Bearer " + forged); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("HS256 token of another secret: %v", err)
	}
}
