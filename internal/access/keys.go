package access

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/messagebus/messagebus/internal/auth/token"
)

// SigningKey is a key the control plane signs broker tokens with. Its kid
// (a thumbprint of the public key) goes in each token's header, so brokers
// can verify tokens of every key still configured during a rotation.
type SigningKey struct {
	KID    string
	Signer crypto.Signer
}

// KeyID derives a key's kid: base64url of the SHA-256 of its public key
// (SubjectPublicKeyInfo DER), shortened; stable across restarts.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:12]), nil
}

// LoadSigningKeys loads private keys (PEM or DER): the first signs, all
// verify. With no files, a key in dir is used, generated (ES256) on first
// start, so a standalone node issues tokens with no setup.
func LoadSigningKeys(files []string, dir string) ([]SigningKey, error) {
	if len(files) == 0 {
		path := filepath.Join(dir, "signing-key.pem")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := generateKey(path); err != nil {
				return nil, err
			}
		}
		files = []string{path}
	}
	var keys []SigningKey
	for _, f := range files {
		signer, err := token.LoadPrivateKey(f)
		if err != nil {
			return nil, fmt.Errorf("access signing key: %w", err)
		}
		kid, err := KeyID(signer.Public())
		if err != nil {
			return nil, fmt.Errorf("access signing key %s: %w", f, err)
		}
		keys = append(keys, SigningKey{KID: kid, Signer: signer})
	}
	return keys, nil
}

func generateKey(path string) error {
	signer, err := token.GenerateKeyPair(token.ES256)
	if err != nil {
		return err
	}
	b, err := token.MarshalPrivateKey(signer, token.PEM)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// Written to a temporary name first so a crash never leaves half a key.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Verifiers returns a token verifier per kid, for the broker's
// authentication.
func Verifiers(keys []SigningKey) (map[string]*token.Verifier, error) {
	out := map[string]*token.Verifier{}
	for _, k := range keys {
		v, err := token.NewVerifier(token.Config{PublicKey: k.Signer.Public()})
		if err != nil {
			return nil, err
		}
		out[k.KID] = v
	}
	return out, nil
}
