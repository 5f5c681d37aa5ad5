package connectors

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// AWSSettings are the AWS connectors' common keys (embed it in a type's
// settings).
type AWSSettings struct {
	// Region defaults to us-east-1.
	Region string `json:"region"`
	// Endpoint overrides the service endpoint (an emulator, a VPC endpoint).
	Endpoint string `json:"endpoint"`
	// AccessKeyID and SecretAccessKey are secrets (references); without
	// them the default credential chain is used (environment, profile,
	// instance role).
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

// AWSSecretKeys are AWSSettings' secret keys.
var AWSSecretKeys = []string{"accessKeyId", "secretAccessKey"}

// AWSConfig makes the SDK's config from the settings.
func (s *AWSSettings) AWSConfig(ctx context.Context) (aws.Config, error) {
	region := s.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if s.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, "")))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	if s.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(s.Endpoint)
	}
	return cfg, nil
}

// CallTimeout bounds one call to an external system.
const CallTimeout = 30 * time.Second
