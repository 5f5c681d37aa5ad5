package access

import (
	"context"

	accessv1 "github.com/messagebus/messagebus/api/access/v1"
	"github.com/messagebus/messagebus/internal/access/identity"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AWSConfig turns on AWS IAM identities (signed sts:GetCallerIdentity).
type AWSConfig struct {
	Enabled     bool
	STSEndpoint string
	Region      string
	// Audience must be signed into each request, so a request made for us
	// cannot be replayed against another service, nor theirs against us.
	Audience string
}

type awsVerifier struct {
	v *identity.AWSVerifier // nil when AWS identities are off
}

func newAWSVerifier(cfg AWSConfig) awsVerifier {
	if !cfg.Enabled {
		return awsVerifier{}
	}
	return awsVerifier{v: identity.NewAWSVerifier(identity.AWSConfig{
		STSEndpoint: cfg.STSEndpoint, Region: cfg.Region, Audience: cfg.Audience,
	})}
}

func (a awsVerifier) verify(ctx context.Context, req *accessv1.AWSSignedRequest) (identity.Identity, error) {
	if a.v == nil {
		return identity.Identity{}, status.Error(codes.FailedPrecondition, "AWS identities are not enabled on this server")
	}
	sr := identity.SignedRequest{Method: req.GetMethod(), URL: req.GetUrl(), Header: map[string][]string{}, Body: req.GetBody()}
	for k, v := range req.GetHeaders() {
		sr.Header[k] = v.GetValues()
	}
	return a.v.Verify(ctx, sr)
}

// SignedRequestMessage converts a signed request for the wire (used by the CLI).
func SignedRequestMessage(sr identity.SignedRequest) *accessv1.AWSSignedRequest {
	m := &accessv1.AWSSignedRequest{Method: sr.Method, Url: sr.URL, Body: sr.Body, Headers: map[string]*accessv1.HeaderValues{}}
	for k, v := range sr.Header {
		m.Headers[k] = &accessv1.HeaderValues{Values: v}
	}
	return m
}
