// Package etcd is a meta.Store kept in etcd (v3 API, client v3.7), so that
// a broker's metadata (tenants, namespaces, policies, partitioned-topic
// metadata, topic policies, access-plane records, the audit log and the
// counters) lives in a replicated store several brokers or clusters can share.
//
// Layout: the record meta.Store calls "/admin/policies/public/default" is the
// etcd key "<prefix>/admin/policies/public/default", with the prefix
// "/messagebus" unless configured otherwise; the value is stored as is. A
// record's meta version is etcd's per-key version (1 on create, +1 per put,
// gone with the key), so compare-and-set is one etcd transaction comparing
// the key's version: Put with meta.NotExists compares it with 0.
//
// Remote calls: every request runs under the caller's context, shortened to
// Options.Timeout when the caller gives no earlier deadline. A write that
// fails with a transport error may still have been applied (etcd cannot say);
// it is returned as an error and never retried here: compare-and-set callers
// read again, which is what makes retries safe.
//
// Watches resume after a broken stream or a leader change from the revision
// after the last event delivered (etcd keeps the history), so nothing is
// missed or repeated. When that history was compacted (ErrCompacted), or the
// start revision could not be read, the watch delivers meta.EventReset and
// goes on from the oldest revision it can: receivers re-read.
//
// It depends on meta and the etcd client only.
package etcd
