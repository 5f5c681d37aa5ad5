package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/messagebus/messagebus/internal/pace"
)

// S3Options configure an S3 store.
type S3Options struct {
	Bucket string
	// Region of the bucket; empty takes the SDK's default chain (AWS_REGION,
	// shared config), else us-east-1.
	Region string
	// Endpoint of an S3-compatible server (e.g. http://127.0.0.1:7070);
	// empty: AWS.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket/key rather than
	// bucket.endpoint/key (most S3-compatible servers need it).
	PathStyle bool
	// MaxAttempts of a call, the first included (default 5): 5xx answers,
	// throttling and connection errors are retried with jittered
	// exponential backoff, up to MaxBackoff (default 5 s) between attempts.
	MaxAttempts int
	MaxBackoff  time.Duration
	Metrics     *Metrics // nil: not measured
	// Credentials replace the SDK's default chain when set (the lake
	// sink's configured keys).
	Credentials aws.CredentialsProvider
}

// S3 is a Store on an S3 bucket. Credentials come from the AWS SDK's
// default chain (environment, shared config and credentials files, web
// identity, container and instance roles).
type S3 struct {
	c      *s3.Client
	bucket string
	m      *Metrics

	// http is the SDK's HTTP client, from which background puts derive
	// theirs; nil when the configuration brought a client of its own.
	http *awshttp.BuildableClient
	bgMu sync.Mutex
	bg   map[pace.CPU]*awshttp.BuildableClient
}

// NewS3 makes an S3 store. It does not contact the server.
func NewS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("objstore: an S3 bucket is required")
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.MaxAttempts
			so.MaxBackoff = o.MaxBackoff
			// Retries are bounded by attempts and the call's deadline; the
			// client-side rate limiter would fail calls during an outage.
			so.RateLimiter = noRateLimit{}
		})
	}
	c := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Checksums only where S3 requires them: S3-compatible servers
		// differ in what they accept.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	hc, _ := cfg.HTTPClient.(*awshttp.BuildableClient)
	return &S3{c: c, bucket: o.Bucket, m: o.Metrics, http: hc}, nil
}

// bgWriteBuffer is the write buffer of a background put's connection: the
// body reaches the socket in writes this large, each one a hand-off to
// the writer's thread.
const bgWriteBuffer = 256 << 10

// background returns the HTTP client of puts made as background work at
// priority c (pace.NewContext): its connections write on a thread at that
// priority (pace.Conn), so that copying an object of tens of MiB into the
// socket, and on loopback through the TCP stack, waits for idle CPU as the
// work that made the object did. Nil: the SDK's client.
func (s *S3) background(c pace.CPU) *awshttp.BuildableClient {
	if s.http == nil {
		return nil
	}
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if hc, ok := s.bg[c]; ok {
		return hc
	}
	hc := s.http.WithTransportOptions(func(tr *http.Transport) {
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return pace.Conn(conn, c), nil
		}
		tr.WriteBufferSize = bgWriteBuffer
	})
	if s.bg == nil {
		s.bg = map[pace.CPU]*awshttp.BuildableClient{}
	}
	s.bg[c] = hc
	return hc
}

type noRateLimit struct{}

func (noRateLimit) GetToken(context.Context, uint) (func() error, error) {
	return func() error { return nil }, nil
}
func (noRateLimit) AddTokens(uint) error { return nil }

// observe records a call of op that took since start and moved n bytes.
func (s *S3) observe(op string, start time.Time, n int, err error) {
	if s.m == nil {
		return
	}
	s.m.requests.WithLabelValues(op).Inc()
	s.m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, ErrExists) && !errors.Is(err, ErrNotFound) {
		s.m.errors.WithLabelValues(op).Inc()
	}
	if err == nil && n > 0 {
		s.m.bytes.WithLabelValues(op).Add(float64(n))
	}
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, data []byte, ifNoneMatch bool) (err error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	defer func(start time.Time) { s.observe("put", start, len(data), err) }(time.Now())
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	var opts []func(*s3.Options)
	if c, ok := pace.FromContext(ctx); ok && c.Nice > 0 {
		if hc := s.background(c); hc != nil {
			opts = append(opts, func(o *s3.Options) { o.HTTPClient = hc })
		}
	}
	if _, err := s.c.PutObject(ctx, in, opts...); err != nil {
		if status(err) == http.StatusPreconditionFailed {
			return fmt.Errorf("put %s: %w", key, ErrExists)
		}
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string, off, length int64) (data []byte, err error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	defer func(start time.Time) { s.observe("get", start, len(data), err) }(time.Now())
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	switch {
	case length == 0:
		return []byte{}, nil
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := s.c.GetObject(ctx, in)
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || status(err) == http.StatusNotFound {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	defer out.Body.Close()
	// Read into a buffer of the body's size: io.ReadAll's growth would
	// leave up to twice the bytes allocated, which the block cache keeps.
	size := length
	if size < 0 && out.ContentLength != nil {
		size = *out.ContentLength
	}
	if size >= 0 {
		data = make([]byte, size)
		var n int
		if n, err = io.ReadFull(out.Body, data); err != nil {
			return nil, fmt.Errorf("objstore: get %s: %d bytes at %d: read body: got %d: %w", key, size, off, n, err)
		}
		if extra, _ := out.Body.Read(make([]byte, 1)); extra > 0 {
			return nil, fmt.Errorf("objstore: get %s: %d bytes at %d: the body is longer", key, size, off)
		}
		return data, nil
	}
	data, err = io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("objstore: get %s: read body: %w", key, err)
	}
	if length > 0 && int64(len(data)) != length {
		return nil, fmt.Errorf("objstore: get %s: %d bytes at %d: got %d", key, length, off, len(data))
	}
	return data, nil
}

// GetInto reads len(buf) bytes of key from off into buf: a ranged GET
// whose body lands in the caller's buffer (the block cache's, reused and
// kept outside the Go heap), with no allocation of its own.
func (s *S3) GetInto(ctx context.Context, key string, off int64, buf []byte) (err error) {
	if len(buf) == 0 {
		return nil
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	n := 0
	defer func(start time.Time) { s.observe("get", start, n, err) }(time.Now())
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key,
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(buf))-1))})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || status(err) == http.StatusNotFound {
			return fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("objstore: get %s: %w", key, err)
	}
	defer out.Body.Close()
	if n, err = io.ReadFull(out.Body, buf); err != nil {
		return fmt.Errorf("objstore: get %s: %d bytes at %d: read body: got %d: %w", key, len(buf), off, n, err)
	}
	var one [1]byte
	if extra, _ := out.Body.Read(one[:]); extra > 0 {
		return fmt.Errorf("objstore: get %s: %d bytes at %d: the body is longer", key, len(buf), off)
	}
	return nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) (err error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	defer func(start time.Time) { s.observe("delete", start, 0, err) }(time.Now())
	if _, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		if status(err) == http.StatusNotFound {
			return nil
		}
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) (out []ObjectInfo, err error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	defer func(start time.Time) { s.observe("list", start, 0, err) }(time.Now())
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("objstore: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// CreateBucket creates the bucket unless it exists (for tests and setup).
func (s *S3) CreateBucket(ctx context.Context) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	_, err := s.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "BucketAlready") {
			return nil
		}
		return fmt.Errorf("objstore: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// status is the HTTP status of a failed call, 0 if none.
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
