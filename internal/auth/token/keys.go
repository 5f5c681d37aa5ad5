package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// Signature algorithms. Pulsar's tokens use one of these three in practice;
// the others JWT allows (HS512, PS256, ...) are refused.
const (
	HS256 = "HS256"
	RS256 = "RS256"
	ES256 = "ES256"
)

const (
	// SecretKeyLength is the size of the keys GenerateSecretKey makes, and
	// the least accepted: 256 bits, the minimum HS256 allows (RFC 7518
	// 3.2), which Pulsar's JWT library also enforces.
	SecretKeyLength = 32
	// MinRSABits is the smallest RSA modulus accepted for RS256, as in
	// Pulsar's JWT library.
	MinRSABits = 2048
	// maxKeyFile bounds what is read for a key: real keys are a few KB.
	maxKeyFile = 1 << 20
)

// ParseSecretKey returns the HMAC secret held in b: the raw bytes, or the
// decoded content of a "data:" URL ("data:;base64,<b64>",
// "data:application/octet-stream;base64,<b64>"). Raw bytes are used as they
// are, newline included, because Pulsar does the same with a key file.
func ParseSecretKey(b []byte) ([]byte, error) {
	if isDataURL(b) {
		key, err := parseDataURL(string(bytes.TrimSpace(b)))
		if err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		b = key
	}
	if len(b) == 0 {
		return nil, errors.New("secret key is empty")
	}
	return bytes.Clone(b), nil
}

// LoadSecretKey reads a secret key from src: a file path, a "file:" URL, or
// an inline "data:" URL, like Pulsar's tokenSecretKey setting.
func LoadSecretKey(src string) ([]byte, error) {
	b, err := readKeySource(src)
	if err != nil {
		return nil, err
	}
	key, err := ParseSecretKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describeSource(src), err)
	}
	return key, nil
}

// ParsePublicKey parses an RSA or ECDSA P-256 public key: X.509
// SubjectPublicKeyInfo ("PUBLIC KEY", what Pulsar writes) or PKCS#1
// ("RSA PUBLIC KEY"), in PEM or DER, or either inside a "data:" URL.
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	der, pemType, err := keyBytes(b, "PUBLIC KEY", "RSA PUBLIC KEY")
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	var key any
	switch pemType {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(der)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(der)
	default: // DER: try both
		if key, err = x509.ParsePKIXPublicKey(der); err != nil {
			if k, err1 := x509.ParsePKCS1PublicKey(der); err1 == nil {
				key, err = k, nil
			}
		}
	}
	if err != nil {
		return nil, errors.New("public key: not an X.509 SubjectPublicKeyInfo or PKCS#1 key")
	}
	if _, err := verifyAlgorithm(key); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return key, nil
}

// LoadPublicKey reads a public key from a file path, "file:" URL or "data:"
// URL, like Pulsar's tokenPublicKey setting.
func LoadPublicKey(src string) (crypto.PublicKey, error) {
	b, err := readKeySource(src)
	if err != nil {
		return nil, err
	}
	key, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describeSource(src), err)
	}
	return key, nil
}

// ParsePrivateKey parses an RSA or ECDSA P-256 private key: PKCS#8
// ("PRIVATE KEY", what Pulsar writes), PKCS#1 ("RSA PRIVATE KEY") or SEC 1
// ("EC PRIVATE KEY", what openssl ecparam writes), in PEM or DER, or inside
// a "data:" URL. Encrypted keys are not supported.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	der, pemType, err := keyBytes(b, "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	var key any
	switch pemType {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	default:
		key, err = x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			if k, err1 := x509.ParsePKCS1PrivateKey(der); err1 == nil {
				key, err = k, nil
			} else if k, err1 := x509.ParseECPrivateKey(der); err1 == nil {
				key, err = k, nil
			}
		}
	}
	if err != nil {
		return nil, errors.New("private key: not a PKCS#8, PKCS#1 or SEC 1 key")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key: unsupported key type %T", key)
	}
	if _, err := SigningAlgorithm(signer); err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return signer, nil
}

// LoadPrivateKey reads a private key from a file path, "file:" URL or
// "data:" URL.
func LoadPrivateKey(src string) (crypto.Signer, error) {
	b, err := readKeySource(src)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describeSource(src), err)
	}
	return key, nil
}

// GenerateSecretKey returns a new random HS256 secret of SecretKeyLength
// bytes, as `pulsar tokens create-secret-key` makes.
func GenerateSecretKey() ([]byte, error) {
	key := make([]byte, SecretKeyLength)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	return key, nil
}

// GenerateKeyPair returns a new private key for alg: RSA 2048 for RS256,
// ECDSA P-256 for ES256 (the sizes Pulsar's create-key-pair uses).
func GenerateKeyPair(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, MinRSABits)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported key pair algorithm %q: want RS256 or ES256", alg)
	}
}

// Format is the encoding of a written key.
type Format int

const (
	// PEM is base64 text between "-----BEGIN ...-----" lines.
	PEM Format = iota
	// DER is the binary encoding `pulsar tokens create-key-pair` writes.
	DER
)

// MarshalPrivateKey encodes key as PKCS#8, the form Pulsar reads.
func MarshalPrivateKey(key crypto.Signer, f Format) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return encode(der, "PRIVATE KEY", f), nil
}

// MarshalPublicKey encodes key as X.509 SubjectPublicKeyInfo, the form
// Pulsar reads.
func MarshalPublicKey(key crypto.PublicKey, f Format) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return encode(der, "PUBLIC KEY", f), nil
}

func encode(der []byte, pemType string, f Format) []byte {
	if f == DER {
		return der
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
}

// SigningAlgorithm is the algorithm Create signs with for key (HS256, RS256
// or ES256), or why key cannot sign.
func SigningAlgorithm(key any) (string, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) < SecretKeyLength {
			return "", fmt.Errorf("secret key is %d bytes, HS256 needs at least %d", len(k), SecretKeyLength)
		}
		return HS256, nil
	case *rsa.PrivateKey:
		return verifyAlgorithm(&k.PublicKey)
	case *ecdsa.PrivateKey:
		return verifyAlgorithm(&k.PublicKey)
	default:
		return "", fmt.Errorf("unsupported signing key type %T: want a secret key, an RSA or an ECDSA P-256 private key", key)
	}
}

// verifyAlgorithm is the only JWT algorithm a public key may verify.
func verifyAlgorithm(key any) (string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("RSA key is %d bits, RS256 needs at least %d", k.N.BitLen(), MinRSABits)
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key is on %s, ES256 needs P-256", k.Curve.Params().Name)
		}
		return ES256, nil
	default:
		return "", fmt.Errorf("unsupported public key type %T: want RSA or ECDSA P-256", key)
	}
}

// keyBytes returns the DER bytes of a key given as a data: URL, PEM or DER,
// and the PEM block type (empty for DER). Blocks of other types, like the
// "EC PARAMETERS" openssl puts before an EC key, are skipped.
func keyBytes(b []byte, pemTypes ...string) (der []byte, pemType string, err error) {
	if isDataURL(b) {
		if b, err = parseDataURL(string(bytes.TrimSpace(b))); err != nil {
			return nil, "", err
		}
	}
	if len(b) == 0 {
		return nil, "", errors.New("empty")
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		return b, "", nil
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, "", fmt.Errorf("no PEM block of type %s", strings.Join(pemTypes, " or "))
		}
		for _, t := range pemTypes {
			if block.Type != t {
				continue
			}
			if _, encrypted := block.Headers["DEK-Info"]; encrypted {
				return nil, "", errors.New("encrypted PEM keys are not supported")
			}
			return block.Bytes, t, nil
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, "", errors.New("encrypted PEM keys are not supported")
		}
	}
}

func isDataURL(b []byte) bool { return bytes.HasPrefix(b, []byte("data:")) }

// parseDataURL decodes "data:[<mediatype>][;base64],<data>" as Pulsar does:
// the media type is ignored, only the base64 encoding is supported, and
// without it the data is taken as is. Errors never echo the data.
func parseDataURL(s string) ([]byte, error) {
	head, data, ok := strings.Cut(strings.TrimPrefix(s, "data:"), ",")
	if !ok {
		return nil, errors.New("data: URL has no comma")
	}
	params := strings.Split(head, ";")
	if len(params) == 1 {
		return []byte(data), nil
	}
	if len(params) != 2 || params[1] != "base64" {
		return nil, errors.New("data: URL encoding must be base64")
	}
	data = strings.Join(strings.Fields(data), "") // line-wrapped base64
	if b, err := base64.StdEncoding.DecodeString(data); err == nil {
		return b, nil
	}
	if b, err := base64.RawStdEncoding.DecodeString(data); err == nil {
		return b, nil
	}
	return nil, errors.New("data: URL is not valid base64")
}

// readKeySource returns the bytes of a key location: an inline data: URL,
// a file: URL or a path.
func readKeySource(src string) ([]byte, error) {
	if src == "" {
		return nil, errors.New("no key given")
	}
	if strings.HasPrefix(src, "data:") {
		return []byte(src), nil
	}
	path := src
	if strings.HasPrefix(src, "file:") {
		u, err := url.Parse(src)
		if err != nil || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("invalid key URL %q: want file:///absolute/path", src)
		}
		path = u.Path
		if path == "" {
			path = u.Opaque // file:relative/path
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("read key %s: larger than %d bytes, not a key", path, maxKeyFile)
	}
	return b, nil
}

// describeSource names a key location in errors without showing inline key
// material.
func describeSource(src string) string {
	if strings.HasPrefix(src, "data:") {
		return "inline data: key"
	}
	return src
}
