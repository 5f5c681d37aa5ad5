// Package identity verifies the identities workloads and people present to
// the control plane: OIDC tokens from trusted issuers (Kubernetes
// service-account tokens, CI OIDC tokens, cloud workload identity, human
// logins), and AWS IAM principals proven by a signed sts:GetCallerIdentity
// request that the control plane forwards to STS.
package identity

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the kind of identity.
type Kind string

const (
	KindOIDC Kind = "oidc"
	KindAWS  Kind = "aws"
)

// Identity is a verified identity.
type Identity struct {
	Kind Kind
	// Issuer is the OIDC issuer URL; empty for AWS.
	Issuer string
	// Subject is the OIDC "sub", or for AWS the IAM role ARN
	// (arn:aws:iam::ACCOUNT:role/NAME) an assumed-role session maps to.
	Subject string
	// Groups and Email come from OIDC claims, when present.
	Groups []string
	Email  string
	// ExpiresAt is when the presented credential expires.
	ExpiresAt time.Time
}

// Key is the stable name associations are stored under:
// "oidc:<issuer>#<subject>" or "aws:<role ARN>".
func (i Identity) Key() string {
	if i.Kind == KindAWS {
		return "aws:" + i.Subject
	}
	return "oidc:" + i.Issuer + "#" + i.Subject
}

// Errors, wrapped with details; errors.Is works on them. Messages never
// contain the presented token or signature.
var (
	ErrUntrustedIssuer = errors.New("identity token from an untrusted issuer")
	ErrExpired         = errors.New("identity credential expired")
	ErrAudience        = errors.New("identity token audience not accepted")
	ErrReplay          = errors.New("signed request already used")
	ErrInvalid         = errors.New("invalid identity credential")
	// ErrSignature: the token is well formed but signed by none of its
	// issuer's keys (forged, or signed by a key the issuer dropped). It
	// also matches ErrInvalid.
	ErrSignature = fmt.Errorf("%w: signature does not verify", ErrInvalid)
)
