package meta

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Records of the access control plane (package access), under
// /access/: which groups administer a tenant, which identities are bound to
// which roles, and the audit log.
const accessPrefix = "/access/"

// AccessTenant is the control plane's record of a tenant it created.
type AccessTenant struct {
	Groups    []string  `json:"groups"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
}

// Association binds a verified identity to a tenant-prefixed role.
type Association struct {
	Tenant       string    `json:"tenant"`
	Role         string    `json:"role"` // tenant-prefixed
	IdentityKind string    `json:"identityKind"`
	Issuer       string    `json:"issuer,omitempty"`
	Subject      string    `json:"subject"`
	IdentityKey  string    `json:"identityKey"`
	Actions      []string  `json:"actions,omitempty"`
	Namespaces   []string  `json:"namespaces,omitempty"`
	VaultPath    string    `json:"vaultPath,omitempty"`
	CreatedBy    string    `json:"createdBy"`
	CreatedAt    time.Time `json:"createdAt"`
}

// AuditRecord is one control-plane change, or one refused request.
type AuditRecord struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Tenant string    `json:"tenant,omitempty"`
	Detail string    `json:"detail,omitempty"`
	// Refusals: reason class, claimed identity and issuer (unverified),
	// role asked for, caller's address; audit-dropped: source and count.
	Reason   string `json:"reason,omitempty"`
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	Role     string `json:"role,omitempty"`
	Source   string `json:"source,omitempty"`
	Dropped  uint32 `json:"dropped,omitempty"`
}

func accessTenantKey(tenant string) string { return accessPrefix + "tenants/" + tenant }

// associationKey is unique per tenant, role and identity; the identity key
// holds '/' and '#', hence the encoding.
func associationKey(tenant, role, identityKey string) string {
	return accessPrefix + "associations/" + tenant + "/" + role + "/" + base64.RawURLEncoding.EncodeToString([]byte(identityKey))
}

// AccessTenant returns the control plane's record of tenant.
func (r *Resources) AccessTenant(ctx context.Context, tenant string) (AccessTenant, error) {
	var t AccessTenant
	_, err := r.getJSON(ctx, accessTenantKey(tenant), &t)
	return t, err
}

// PutAccessTenant creates the record of tenant; ErrExists when it exists.
func (r *Resources) PutAccessTenant(ctx context.Context, tenant string, t AccessTenant) error {
	return r.putJSON(ctx, accessTenantKey(tenant), t, NotExists)
}

// DeleteAccessTenant removes the record of tenant.
func (r *Resources) DeleteAccessTenant(ctx context.Context, tenant string) error {
	return r.Store.Delete(ctx, accessTenantKey(tenant), AnyVersion)
}

// Association returns one association; ErrNotFound when there is none.
func (r *Resources) Association(ctx context.Context, tenant, role, identityKey string) (Association, error) {
	var a Association
	_, err := r.getJSON(ctx, associationKey(tenant, role, identityKey), &a)
	return a, err
}

// PutAssociation creates or replaces an association.
func (r *Resources) PutAssociation(ctx context.Context, a Association) error {
	return r.putJSON(ctx, associationKey(a.Tenant, a.Role, a.IdentityKey), a, AnyVersion)
}

// DeleteAssociation removes an association; ErrNotFound when there is none.
func (r *Resources) DeleteAssociation(ctx context.Context, tenant, role, identityKey string) error {
	return r.Store.Delete(ctx, associationKey(tenant, role, identityKey), AnyVersion)
}

// Associations lists a tenant's associations ("" lists every tenant's),
// sorted by role.
func (r *Resources) Associations(ctx context.Context, tenant string) ([]Association, error) {
	prefix := accessPrefix + "associations/"
	if tenant != "" {
		prefix += tenant + "/"
	}
	kvs, err := r.Store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Association, 0, len(kvs))
	for _, kv := range kvs {
		var a Association
		if err := decodeJSON(kv, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// AppendAudit records a change. Keys sort by time, so listing is in order.
func (r *Resources) AppendAudit(ctx context.Context, rec AuditRecord) error {
	for i := 0; ; i++ {
		key := fmt.Sprintf("%saudit/%020d-%03d", accessPrefix, rec.Time.UnixNano(), i)
		err := r.putJSON(ctx, key, rec, NotExists)
		if !errors.Is(err, ErrExists) || i == 999 {
			return err
		}
	}
}

// Audit returns up to limit records, newest first, that keep says to keep.
func (r *Resources) Audit(ctx context.Context, limit int, keep func(AuditRecord) bool) ([]AuditRecord, error) {
	kvs, err := r.Store.List(ctx, accessPrefix+"audit/")
	if err != nil {
		return nil, err
	}
	var out []AuditRecord
	for i := len(kvs) - 1; i >= 0 && len(out) < limit; i-- {
		var rec AuditRecord
		if err := decodeJSON(kvs[i], &rec); err != nil {
			return nil, err
		}
		if keep(rec) {
			out = append(out, rec)
		}
	}
	return out, nil
}

func decodeJSON(kv KV, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", strings.TrimPrefix(kv.Key, accessPrefix), err)
	}
	return nil
}
