package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Defaults for the AWS IAM method; the signer and the verifier must agree.
const (
	DefaultSTSEndpoint = "https://sts.amazonaws.com/"
	DefaultSTSRegion   = "us-east-1"
)

// AudienceHeader carries the control plane's audience in the signed
// request, so that a request signed for MessageBus cannot be replayed
// against another service that uses the same method (and vice versa).
const AudienceHeader = "X-MessageBus-Audience"

// getCallerIdentityBody is the only body the verifier accepts.
const getCallerIdentityBody = "Action=GetCallerIdentity&Version=2011-06-15"

// SignedRequest is a signed sts:GetCallerIdentity request that the workload
// prepared but did not send; the control plane checks it and sends it to
// STS itself. Header holds the Authorization signature (and, for temporary
// credentials, the session token): treat a SignedRequest as a secret for
// the few minutes it is valid and never log it.
type SignedRequest struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Header map[string][]string `json:"header"`
	Body   []byte              `json:"body"`
}

// SignGetCallerIdentity signs, with creds, a POST GetCallerIdentity request
// for the STS endpoint (DefaultSTSEndpoint when empty) in region
// (DefaultSTSRegion when empty), with audience in AudienceHeader when not
// empty, at time now (time.Now when zero). The endpoint must be the one the
// control plane is configured with, byte for byte.
func SignGetCallerIdentity(ctx context.Context, creds aws.CredentialsProvider, endpoint, region, audience string, now time.Time) (SignedRequest, error) {
	if creds == nil {
		return SignedRequest{}, fmt.Errorf("sign sts:GetCallerIdentity: no AWS credentials provider")
	}
	if endpoint == "" {
		endpoint = DefaultSTSEndpoint
	}
	if region == "" {
		region = DefaultSTSRegion
	}
	if now.IsZero() {
		now = time.Now()
	}
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return SignedRequest{}, fmt.Errorf("sign sts:GetCallerIdentity: retrieve AWS credentials: %w", err)
	}

	body := []byte(getCallerIdentityBody)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return SignedRequest{}, fmt.Errorf("sign sts:GetCallerIdentity: endpoint %q: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if audience != "" {
		req.Header.Set(AudienceHeader, audience)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, c, req, hex.EncodeToString(sum[:]), "sts", region, now); err != nil {
		return SignedRequest{}, fmt.Errorf("sign sts:GetCallerIdentity: %w", err)
	}
	return SignedRequest{
		Method: http.MethodPost,
		URL:    endpoint,
		Header: req.Header.Clone(),
		Body:   body,
	}, nil
}
