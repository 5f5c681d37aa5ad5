package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults of Options.
const (
	DefaultPrefix  = "/messagebus"
	DefaultTimeout = 5 * time.Second
)

// Options configure a Store.
type Options struct {
	// Endpoints are etcd client URLs or host:port pairs.
	Endpoints []string
	// Prefix is put before every key (default DefaultPrefix), so several
	// clusters can share one etcd.
	Prefix string
	// Timeout bounds each request, and connecting (default DefaultTimeout).
	Timeout time.Duration
	// Username and Password authenticate to etcd when Username is set.
	Username, Password string
	// TLS, when set, connects with TLS.
	TLS *tls.Config
	// Metrics, when set, records request latencies and errors.
	Metrics *Metrics
	Logger  *slog.Logger
}

// Store is a meta.Store in etcd.
type Store struct {
	c       *clientv3.Client
	prefix  string
	timeout time.Duration
	m       *Metrics
	log     *slog.Logger

	ctx    context.Context // ends at Close: stops the watches
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// ParseURL returns the endpoints of an etcd://host:port[,host:port...] URL.
func ParseURL(s string) ([]string, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return nil, fmt.Errorf("metadata store %q: want etcd://host:port[,host:port...]", s)
	}
	rest = strings.TrimSuffix(rest, "/")
	var eps []string
	for _, hp := range strings.Split(rest, ",") {
		hp = strings.TrimSpace(hp)
		if hp == "" {
			continue
		}
		if strings.Contains(hp, "/") {
			return nil, fmt.Errorf("metadata store %q: %q is not host:port", s, hp)
		}
		if _, err := url.Parse("http://" + hp); err != nil {
			return nil, fmt.Errorf("metadata store %q: %w", s, err)
		}
		eps = append(eps, hp)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("metadata store %q: no endpoints", s)
	}
	return eps, nil
}

// TLSConfig builds the client TLS configuration from PEM files: the CAs
// that verify etcd's certificate (empty: the system's) and, optionally, a
// client certificate and key.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("etcd TLS: a client certificate needs both the certificate and the key file")
	}
	info := transport.TLSInfo{TrustedCAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	if caFile == "" && certFile == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	return info.ClientConfig()
}

// Open connects to etcd and checks that it answers within the timeout.
func Open(opts Options) (*Store, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	prefix := "/" + strings.Trim(opts.Prefix, "/")
	if prefix == "/" {
		prefix = ""
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	eps := make([]string, len(opts.Endpoints))
	for i, ep := range opts.Endpoints {
		if !strings.Contains(ep, "://") {
			if opts.TLS != nil {
				ep = "https://" + ep
			} else {
				ep = "http://" + ep
			}
		}
		eps[i] = ep
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          opts.Timeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		PermitWithoutStream:  true,
		TLS:                  opts.TLS,
		Username:             opts.Username,
		Password:             opts.Password,
		Logger:               quietZap(),
		// gRPC's default reconnect backoff grows to two minutes: after an
		// etcd outage the broker would wait that long to notice it ended.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: opts.Timeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{c: c, prefix: prefix, timeout: opts.Timeout, m: opts.Metrics, log: opts.Logger, ctx: ctx, cancel: cancel}
	if _, err := s.revision(context.Background()); err != nil {
		s.Close()
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return s, nil
}

// quietZap keeps the etcd client's errors and drops its retry chatter.
func quietZap() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zapcore.ErrorLevel)
	cfg.Sampling = nil
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}

// Client is the underlying etcd client (tests and tools).
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix is the key prefix in etcd ("" for none).
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) key(k string) string { return s.prefix + k }

// rangeKey is the etcd prefix of a listing or watch: "" means every record
// of this store, never another prefix's ("/messagebus2/...").
func (s *Store) rangeKey(prefix string) string {
	if prefix == "" {
		return s.prefix + "/"
	}
	return s.prefix + prefix
}

// call runs one request with the store's deadline and records it.
func (s *Store) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return meta.ErrClosed
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	start := time.Now()
	err := fn(ctx)
	s.m.observe(op, time.Since(start), err)
	return err
}

// revision returns etcd's current revision.
func (s *Store) revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.call(ctx, "get", func(ctx context.Context) error {
		resp, err := s.c.Get(ctx, s.key("/"), clientv3.WithCountOnly())
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	return rev, err
}

// Get implements meta.Store.
func (s *Store) Get(ctx context.Context, key string) (meta.KV, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, "get", func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.key(key))
		return err
	})
	if err != nil {
		return meta.KV{}, fmt.Errorf("meta get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return meta.KV{}, meta.ErrNotFound
	}
	kv := resp.Kvs[0]
	return meta.KV{Key: key, Value: kv.Value, Version: kv.Version}, nil
}

// Put implements meta.Store: with a version, one transaction that writes
// only when the key's version is still the expected one.
func (s *Store) Put(ctx context.Context, key string, value []byte, expected int64) (int64, error) {
	k := s.key(key)
	if expected == meta.AnyVersion {
		var resp *clientv3.PutResponse
		err := s.call(ctx, "put", func(ctx context.Context) (err error) {
			resp, err = s.c.Put(ctx, k, string(value), clientv3.WithPrevKV())
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("meta put %s (outcome unknown): %w", key, err)
		}
		if resp.PrevKv == nil {
			return 1, nil
		}
		return resp.PrevKv.Version + 1, nil
	}
	var resp *clientv3.TxnResponse
	err := s.call(ctx, "txn", func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(k), "=", expected)).
			Then(clientv3.OpPut(k, string(value))).
			Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).
			Commit()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("meta put %s at version %d (outcome unknown): %w", key, expected, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: %s is at version %d, expected %d", meta.ErrBadVersion, key, elseVersion(resp), expected)
	}
	return expected + 1, nil
}

// elseVersion is the key's version read by a failed transaction's Else.
func elseVersion(resp *clientv3.TxnResponse) int64 {
	if len(resp.Responses) == 0 {
		return 0
	}
	if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
		return rr.Kvs[0].Version
	}
	return 0
}

// Delete implements meta.Store.
func (s *Store) Delete(ctx context.Context, key string, expected int64) error {
	k := s.key(key)
	if expected == meta.AnyVersion {
		var resp *clientv3.DeleteResponse
		err := s.call(ctx, "delete", func(ctx context.Context) (err error) {
			resp, err = s.c.Delete(ctx, k)
			return err
		})
		if err != nil {
			return fmt.Errorf("meta delete %s (outcome unknown): %w", key, err)
		}
		if resp.Deleted == 0 {
			return meta.ErrNotFound
		}
		return nil
	}
	var resp *clientv3.TxnResponse
	err := s.call(ctx, "txn", func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(k), "=", expected)).
			Then(clientv3.OpDelete(k)).
			Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).
			Commit()
		return err
	})
	if err != nil {
		return fmt.Errorf("meta delete %s at version %d (outcome unknown): %w", key, expected, err)
	}
	if !resp.Succeeded {
		cur := elseVersion(resp)
		if cur == 0 {
			return meta.ErrNotFound
		}
		return fmt.Errorf("%w: %s is at version %d, expected %d", meta.ErrBadVersion, key, cur, expected)
	}
	return nil
}

// List implements meta.Store: one consistent read at one revision.
func (s *Store) List(ctx context.Context, prefix string) ([]meta.KV, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, "list", func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.rangeKey(prefix), clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("meta list %s: %w", prefix, err)
	}
	out := make([]meta.KV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, meta.KV{Key: strings.TrimPrefix(string(kv.Key), s.prefix), Value: kv.Value, Version: kv.Version})
	}
	return out, nil
}

// Close implements meta.Store: it ends the watches and disconnects.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.c.Close()
}
