// Package vault delivers credentials to a HashiCorp Vault (or OpenBao)
// KV version 2 secrets engine, for teams that read their secrets from
// Vault: the control plane writes each association's broker token to a
// path derived from the identity (PathFor) and rewrites it before it
// expires; `mb access creds --vault-addr` reads it back.
//
// It speaks Vault's documented KV v2 HTTP API through the official client
// (github.com/hashicorp/vault/api) and depends on nothing else of
// MessageBus. Values written are secrets: they never appear in errors.
package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// DefaultMount is the KV v2 mount used when Config.Mount is empty; it is
// the mount a Vault dev server enables.
const DefaultMount = "secret"

// Errors, wrapped with the path; errors.Is works on them.
var (
	// ErrNotFound: no secret at the path, or its current version is
	// deleted or destroyed.
	ErrNotFound = errors.New("vault: secret not found")
	// ErrPermissionDenied: Vault refused the token (invalid, expired, or
	// its policy does not allow the path).
	ErrPermissionDenied = errors.New("vault: permission denied")
)

// Config says which Vault to talk to.
type Config struct {
	// Address is Vault's URL, such as https://vault.example.com:8200.
	Address string
	// Token authenticates to Vault (X-Vault-Token).
	Token string
	// Mount is the KV v2 mount path; DefaultMount when empty.
	Mount string
	// HTTPClient, when set, carries the requests (TLS settings, proxies).
	HTTPClient *http.Client
	// MaxRetries is how often a request that failed on a connection error
	// or a 5xx is retried (with backoff). 0, the default, means no retry:
	// the refresh job tries again on its next run, sooner than a backoff
	// would let it.
	MaxRetries int
	// Timeout bounds each request; 30 s when zero.
	Timeout time.Duration
}

// Client reads and writes KV v2 secrets. It is safe for concurrent use.
type Client struct {
	kv    *api.KVv2
	mount string
}

// New returns a client for cfg. It does not contact Vault.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("vault: no address")
	}
	if cfg.Token == "" {
		return nil, errors.New("vault: no token")
	}
	mount := strings.Trim(cfg.Mount, "/")
	if mount == "" {
		mount = DefaultMount
	}
	if err := checkPath(mount); err != nil {
		return nil, fmt.Errorf("vault: mount %q: %w", cfg.Mount, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ac := &api.Config{
		Address:    cfg.Address,
		HttpClient: cfg.HTTPClient,
		MaxRetries: cfg.MaxRetries,
		Timeout:    timeout,
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault: client for %s: %w", cfg.Address, err)
	}
	// api.NewClient picks up VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment; the server's configuration must decide, not the
	// process environment.
	c.SetToken(cfg.Token)
	c.ClearNamespace()
	return &Client{kv: c.KVv2(mount), mount: mount}, nil
}

// Put writes data as a new version of the secret at path (relative to
// the mount).
func (c *Client) Put(ctx context.Context, path string, data map[string]any) error {
	path, err := cleanPath(path)
	if err != nil {
		return err
	}
	if _, err := c.kv.Put(ctx, path, data); err != nil {
		return c.wrap("write", path, err)
	}
	return nil
}

// Get reads the current version of the secret at path (relative to the
// mount); ErrNotFound when there is none.
func (c *Client) Get(ctx context.Context, path string) (map[string]any, error) {
	path, err := cleanPath(path)
	if err != nil {
		return nil, err
	}
	s, err := c.kv.Get(ctx, path)
	if err != nil {
		return nil, c.wrap("read", path, err)
	}
	// A deleted or destroyed current version reads as metadata without data.
	if s.Data == nil {
		return nil, fmt.Errorf("%w at %s/data/%s (current version deleted)", ErrNotFound, c.mount, path)
	}
	return s.Data, nil
}

func (c *Client) wrap(op, path string, err error) error {
	where := c.mount + "/data/" + path
	var re *api.ResponseError
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return fmt.Errorf("%w at %s", ErrNotFound, where)
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %s %s: check the Vault token and that its policy allows this path", ErrPermissionDenied, op, where)
	case errors.As(err, &re):
		return fmt.Errorf("vault: %s %s: Vault answered %d: %s", op, where, re.StatusCode, strings.Join(re.Errors, "; "))
	default:
		// Connection errors and the like; the vault client's messages name
		// the URL, never the token or the data. Its own wrapping only
		// repeats the path.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return fmt.Errorf("vault: %s %s: %w", op, where, err)
	}
}

func cleanPath(path string) (string, error) {
	p := strings.Trim(path, "/")
	if err := checkPath(p); err != nil {
		return "", fmt.Errorf("vault: path %q: %w", path, err)
	}
	return p, nil
}

// checkPath refuses paths that would address something other than one
// secret under the mount.
func checkPath(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("empty, '.' or '..' segment")
		}
	}
	if strings.ContainsAny(p, "?#%\\") || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return errors.New("contains '?', '#', '%', '\\' or a control character")
	}
	return nil
}
