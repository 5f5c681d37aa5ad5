// Package token creates and verifies the JWT authentication tokens of
// MessageBus, in the format of Apache Pulsar's token authentication so that
// tokens and keys move freely between the two:
//
//   - A token is a compact JWS whose header is {"alg":"HS256"} (or RS256,
//     ES256) and whose payload is {"sub":"<role>"} with an optional "exp" in
//     seconds; without "exp" a token never expires. This is what
//     `pulsar tokens create` writes, and Create writes the same header (no
//     "typ").
//   - A secret key is the raw bytes of the HMAC key (what
//     `pulsar tokens create-secret-key` writes) or a "data:;base64,<b64>" URL.
//   - Key pairs are PKCS#8 private keys and X.509 SubjectPublicKeyInfo public
//     keys, in DER (as `pulsar tokens create-key-pair` writes them) or PEM.
//   - Key locations may be paths, "file:///abs/path" or "data:" URLs, as in
//     Pulsar's tokenSecretKey and tokenPublicKey settings.
//
// Verification is stricter than the JWT format allows: the algorithm is fixed
// by the configured key (HS256 for a secret key, RS256 for an RSA public key,
// ES256 for a P-256 public key), so "none" and key-confusion tokens are
// refused, and tokens longer than MaxTokenLength are refused before parsing.
// Errors wrap the package's sentinel errors and never contain the token or
// key material.
//
// The package depends only on the standard library and golang-jwt; it knows
// nothing of brokers, roles' permissions or the wire protocol.
package token
