// Package cluster is the ownership layer of cluster mode: the broker
// registry (a lease-bound key per broker with its advertised URLs and
// load), namespace bundles (hash ranges of topic names, as Pulsar), bundle
// owner keys created in an etcd transaction bound to the owner's lease
// (create revision == 0), whose create revision is the fencing token every
// index commit of the bundle's topics is guarded by, and lookup answers
// (this broker, or a redirect to the owner or to the least-loaded live
// broker for an unowned bundle).
//
// A broker that loses its lease (expired during a pause or a partition)
// stops serving the topics of every bundle it owned at once (OnRelease),
// then registers again with a new lease.
//
// Workers (workers.go, plan.go) places function and connector instances on
// the brokers whose workers are enabled, with lease-bound claim keys
// created the same way; a broker that loses its lease stops them at once.
package cluster
