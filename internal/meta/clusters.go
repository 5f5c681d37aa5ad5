package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ClusterData is the JSON of a cluster, as Pulsar's admin API shows it. The
// local cluster's record holds this broker's own URLs; the record of a
// remote cluster is what geo-replication dials: BrokerServiceURL (or
// BrokerServiceURLTls when BrokerClientTLSEnabled) with the credentials of
// AuthenticationPlugin and AuthenticationParameters.
type ClusterData struct {
	ServiceURL                     string   `json:"serviceUrl,omitempty"`
	ServiceURLTls                  string   `json:"serviceUrlTls,omitempty"`
	BrokerServiceURL               string   `json:"brokerServiceUrl,omitempty"`
	BrokerServiceURLTls            string   `json:"brokerServiceUrlTls,omitempty"`
	ProxyServiceURL                string   `json:"proxyServiceUrl,omitempty"`
	AuthenticationPlugin           string   `json:"authenticationPlugin,omitempty"`
	AuthenticationParameters       string   `json:"authenticationParameters,omitempty"`
	PeerClusterNames               []string `json:"peerClusterNames,omitempty"`
	BrokerClientTLSEnabled         bool     `json:"brokerClientTlsEnabled,omitempty"`
	BrokerClientTrustCertsFilePath string   `json:"brokerClientTrustCertsFilePath,omitempty"`
	TLSAllowInsecureConnection     bool     `json:"tlsAllowInsecureConnection,omitempty"`
	// BrokerClientCertificateFilePath and BrokerClientKeyFilePath are the
	// replication link's client certificate (mutual TLS).
	BrokerClientCertificateFilePath string `json:"brokerClientCertificateFilePath,omitempty"`
	BrokerClientKeyFilePath         string `json:"brokerClientKeyFilePath,omitempty"`
}

// ErrClusterInUse is returned when deleting a cluster a tenant or a
// namespace still names.
var ErrClusterInUse = errors.New("meta: cluster in use")

// Cluster returns a cluster's data.
func (r *Resources) Cluster(ctx context.Context, name string) (ClusterData, error) {
	var c ClusterData
	_, err := r.getJSON(ctx, clustersPrefix+name, &c)
	return c, err
}

// PutCluster creates or replaces a cluster.
func (r *Resources) PutCluster(ctx context.Context, name string, c ClusterData) error {
	return r.putJSON(ctx, clustersPrefix+name, c, AnyVersion)
}

// CreateCluster registers a cluster; ErrExists when it is registered.
func (r *Resources) CreateCluster(ctx context.Context, name string, c ClusterData) error {
	return r.putJSON(ctx, clustersPrefix+name, c, NotExists)
}

// UpdateCluster replaces a registered cluster's data; ErrNotFound when it
// is not registered.
func (r *Resources) UpdateCluster(ctx context.Context, name string, c ClusterData) error {
	kv, err := r.Store.Get(ctx, clustersPrefix+name)
	if err != nil {
		return err
	}
	return r.putJSON(ctx, clustersPrefix+name, c, kv.Version)
}

// DeleteCluster forgets a cluster. It refuses (ErrClusterInUse) while a
// tenant allows it or a namespace replicates to it, as Pulsar refuses to
// delete a cluster that is not empty.
func (r *Resources) DeleteCluster(ctx context.Context, name string) error {
	if _, err := r.Store.Get(ctx, clustersPrefix+name); err != nil {
		return err
	}
	tenants, err := r.Tenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		ti, err := r.Tenant(ctx, t)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return err
		}
		if slices.Contains(ti.AllowedClusters, name) {
			return fmt.Errorf("%w: tenant %s allows it", ErrClusterInUse, t)
		}
		nss, err := r.Namespaces(ctx, t)
		if err != nil {
			return err
		}
		for _, n := range nss {
			var p Policies
			if _, err := r.getJSON(ctx, policiesPrefix+n, &p); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if slices.Contains(p.ReplicationClusters, name) {
				return fmt.Errorf("%w: namespace %s replicates to it", ErrClusterInUse, n)
			}
		}
	}
	return r.Store.Delete(ctx, clustersPrefix+name, AnyVersion)
}

// Clusters lists cluster names.
func (r *Resources) Clusters(ctx context.Context) ([]string, error) {
	return r.children(ctx, clustersPrefix)
}

// bootstrapCluster records the local cluster's own URLs, keeping whatever
// else an operator set on its record.
func (r *Resources) bootstrapCluster(ctx context.Context, name string, own ClusterData) error {
	cur, err := r.Cluster(ctx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	cur.ServiceURL = own.ServiceURL
	cur.BrokerServiceURL = own.BrokerServiceURL
	if own.ServiceURLTls != "" {
		cur.ServiceURLTls = own.ServiceURLTls
	}
	if own.BrokerServiceURLTls != "" {
		cur.BrokerServiceURLTls = own.BrokerServiceURLTls
	}
	return r.PutCluster(ctx, name, cur)
}
