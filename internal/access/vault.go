package access

import (
	"context"
	"sync"
	"time"

	"github.com/messagebus/messagebus/internal/access/vault"
	"github.com/messagebus/messagebus/internal/meta"
)

// VaultConfig turns on delivery of tokens to a Vault KV v2 store.
type VaultConfig struct {
	Address string
	Token   string
	Mount   string // default "secret"
	Prefix  string // default "messagebus"
	// RefreshInterval is how often deliveries are checked (default 1m). A
	// token is replaced once two thirds of its lifetime have passed.
	RefreshInterval time.Duration
}

// delivery keeps a fresh token at the Vault path of every association that
// asked for it. It is part of the server, not an external cron job.
type delivery struct {
	s      *Service
	cfg    VaultConfig
	client *vault.Client
	wakeC  chan struct{}

	mu      sync.Mutex
	expires map[string]time.Time // association path -> expiry of the delivered token
}

func newDelivery(s *Service, cfg VaultConfig) (*delivery, error) {
	if cfg.Address == "" {
		return nil, nil
	}
	if cfg.Mount == "" {
		cfg.Mount = "secret"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "messagebus"
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = time.Minute
	}
	c, err := vault.New(vault.Config{Address: cfg.Address, Token: cfg.Token, Mount: cfg.Mount})
	if err != nil {
		return nil, err
	}
	return &delivery{s: s, cfg: cfg, client: c, wakeC: make(chan struct{}, 1), expires: map[string]time.Time{}}, nil
}

func (d *delivery) pathFor(a meta.Association) string {
	return vault.PathFor(d.cfg.Prefix, a.Tenant, a.Role, a.IdentityKey)
}

// wake makes the loop deliver now (after a new association).
func (d *delivery) wake() {
	if d == nil {
		return
	}
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

// forget stops refreshing a removed association; its last token expires
// on its own.
func (d *delivery) forget(a meta.Association) {
	if d == nil || a.VaultPath == "" {
		return
	}
	d.mu.Lock()
	delete(d.expires, a.VaultPath)
	d.mu.Unlock()
}

func (d *delivery) run(ctx context.Context) {
	if d == nil {
		return
	}
	t := time.NewTicker(d.cfg.RefreshInterval)
	defer t.Stop()
	for {
		d.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wakeC:
		}
	}
}

// refresh delivers tokens that are missing or past two thirds of their life.
func (d *delivery) refresh(ctx context.Context) {
	all, err := d.s.meta.Associations(ctx, "")
	if err != nil {
		d.s.log.Error("vault delivery: list associations", "err", err)
		return
	}
	now := d.s.cfg.Now()
	renewBefore := d.s.cfg.TokenTTL / 3
	for _, a := range all {
		if a.VaultPath == "" {
			continue
		}
		d.mu.Lock()
		exp, ok := d.expires[a.VaultPath]
		d.mu.Unlock()
		if ok && now.Before(exp.Add(-renewBefore)) {
			continue
		}
		tok, exp, err := d.s.issue(a.Role, d.s.cfg.TokenTTL, a.IdentityKey)
		if err == nil {
			err = d.client.Put(ctx, a.VaultPath, map[string]any{
				"token": tok, "role": a.Role, "tenant": a.Tenant, "expires_at": exp.UTC().Format(time.RFC3339),
			})
		}
		if err != nil {
			d.s.log.Error("vault delivery failed", "path", a.VaultPath, "role", a.Role, "err", err)
			continue
		}
		d.mu.Lock()
		d.expires[a.VaultPath] = exp
		d.mu.Unlock()
		d.s.log.Debug("token delivered to vault", "path", a.VaultPath, "role", a.Role, "expires", exp)
	}
}
