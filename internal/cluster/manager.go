package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	ledgercluster "github.com/messagebus/messagebus/internal/ledger/cluster"
)

// ErrNotOwner: this broker does not own the bundle of the topic (the
// client must look it up again).
var ErrNotOwner = errors.New("cluster: namespace bundle not served by this broker")

// BrokerInfo is a live broker's registry entry (value of brokers/<id>).
type BrokerInfo struct {
	ID        string `json:"id"`
	PulsarURL string `json:"pulsarUrl"`
	HTTPURL   string `json:"httpUrl"`
	// The TLS listeners' URLs, empty when the broker has none.
	PulsarTLSURL string `json:"pulsarUrlTls,omitempty"`
	HTTPSURL     string `json:"httpsUrl,omitempty"`
	// Listeners are the named advertised listeners (Pulsar's
	// advertisedListeners), for clients that look up with a listener name.
	Listeners map[string]Listener `json:"listeners,omitempty"`
	Bundles   int                 `json:"bundles"`
	Topics    int                 `json:"topics"`
	MsgRateIn int64               `json:"msgRateIn"`
}

// Listener is one named listener's advertised URLs (either may be empty).
type Listener struct {
	PulsarURL    string `json:"pulsarUrl,omitempty"`
	PulsarTLSURL string `json:"pulsarUrlTls,omitempty"`
}

// ownerRecord is the value of an owner key.
type ownerRecord struct {
	Broker       string              `json:"broker"`
	PulsarURL    string              `json:"pulsarUrl"`
	HTTPURL      string              `json:"httpUrl"`
	PulsarTLSURL string              `json:"pulsarUrlTls,omitempty"`
	HTTPSURL     string              `json:"httpsUrl,omitempty"`
	Listeners    map[string]Listener `json:"listeners,omitempty"`
}

// Load is what a broker reports of its load.
type Load struct {
	Topics    int
	MsgRateIn int64
}

// Options configure a Manager.
type Options struct {
	Client    *clientv3.Client
	Prefix    string // etcd prefix shared with the cluster ledger store; default /mb/cluster/
	ID        string // broker id (unique in the cluster)
	PulsarURL string // advertised pulsar:// URL
	HTTPURL   string // advertised http:// URL of the admin API
	// PulsarTLSURL and HTTPSURL are the advertised pulsar+ssl:// and
	// https:// URLs (empty without TLS listeners): lookups and redirects
	// that arrive over TLS send clients there.
	PulsarTLSURL, HTTPSURL string
	// Listeners are the named advertised listeners, published with the
	// broker and its owner keys.
	Listeners map[string]Listener
	LeaseTTL  time.Duration
	// Bundles is the number of bundles per namespace (default 4).
	Bundles int
	// Release is called when this broker stops owning a bundle: it must
	// stop serving (unload) the bundle's topics before it returns.
	Release func(Bundle)
	// Abandon, when set, is called for every owned bundle before Release
	// when the lease is lost (not on a voluntary unload): the bundle's
	// in-flight commits cannot succeed any more and should fail at once.
	Abandon func(Bundle)
	// Load reports the broker's load, published every LoadInterval.
	Load         func() Load
	LoadInterval time.Duration
	CallTimeout  time.Duration
	Logger       *slog.Logger
}

// Manager holds this broker's registration and bundle ownership.
type Manager struct {
	o      Options
	c      *clientv3.Client
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	lease   clientv3.LeaseID
	lastAck time.Time
	owned   map[string]ownedBundle // by Bundle.String()
	closed  bool
	lost    chan struct{} // closed when the current lease is lost
}

type ownedBundle struct {
	b     Bundle
	fence ledgercluster.Fence
}

// New registers the broker (a lease-bound key) and starts keeping its
// lease alive.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Client == nil || o.ID == "" || strings.Contains(o.ID, "/") {
		return nil, fmt.Errorf("cluster: an etcd client and a broker id without '/' are required (id %q)", o.ID)
	}
	if o.Prefix == "" {
		o.Prefix = "/mb/cluster/"
	}
	o.Prefix = "/" + strings.Trim(o.Prefix, "/") + "/"
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.Bundles <= 0 {
		o.Bundles = DefaultBundles
	}
	if o.LoadInterval <= 0 {
		o.LoadInterval = 5 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Release == nil {
		o.Release = func(Bundle) {}
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &Manager{o: o, c: o.Client, log: o.Logger, ctx: mctx, cancel: cancel, done: make(chan struct{}),
		owned: map[string]ownedBundle{}}
	if err := m.register(ctx); err != nil {
		cancel()
		return nil, err
	}
	go m.run()
	return m, nil
}

func (m *Manager) brokerKey(id string) string { return m.o.Prefix + "brokers/" + id }
func (m *Manager) ownerKey(b Bundle) string   { return m.o.Prefix + "owners/bundles/" + b.String() }

// register grants a lease, puts the broker key and starts the keep-alive.
func (m *Manager) register(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	g, err := m.c.Grant(cctx, int64((m.o.LeaseTTL+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("cluster: grant lease: %w", err)
	}
	resp, err := m.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(m.brokerKey(m.o.ID)), "=", 0)).
		Then(clientv3.OpPut(m.brokerKey(m.o.ID), m.infoJSON(0), clientv3.WithLease(g.ID))).Commit()
	if err != nil {
		m.c.Revoke(context.WithoutCancel(cctx), g.ID)
		return fmt.Errorf("cluster: register broker %s: %w", m.o.ID, err)
	}
	if !resp.Succeeded {
		m.c.Revoke(context.WithoutCancel(cctx), g.ID)
		return fmt.Errorf("cluster: a live broker is already registered as %q (ids must be unique; wait for its lease of %s to expire)", m.o.ID, m.o.LeaseTTL)
	}
	ka, err := m.c.KeepAlive(m.ctx, g.ID)
	if err != nil {
		return fmt.Errorf("cluster: keep lease alive: %w", err)
	}
	lost := make(chan struct{})
	m.mu.Lock()
	m.lease, m.lastAck, m.lost = g.ID, time.Now(), lost
	m.mu.Unlock()
	go func() {
		for range ka {
			m.mu.Lock()
			if m.lease == g.ID {
				m.lastAck = time.Now()
			}
			m.mu.Unlock()
		}
		m.loseLease(g.ID) // the channel closes when the lease is gone (or on Close)
	}()
	return nil
}

func (m *Manager) infoJSON(bundles int) string {
	l := Load{}
	if m.o.Load != nil {
		l = m.o.Load()
	}
	b, _ := json.Marshal(BrokerInfo{ID: m.o.ID, PulsarURL: m.o.PulsarURL, HTTPURL: m.o.HTTPURL,
		PulsarTLSURL: m.o.PulsarTLSURL, HTTPSURL: m.o.HTTPSURL, Listeners: m.o.Listeners, Bundles: bundles, Topics: l.Topics, MsgRateIn: l.MsgRateIn})
	return string(b)
}

// run publishes the load, watches the lease's deadline locally (a paused
// process notices at once that its lease may be gone) and registers again
// after a loss.
func (m *Manager) run() {
	defer close(m.done)
	tick := time.NewTicker(min(m.o.LoadInterval, m.o.LeaseTTL/4))
	defer tick.Stop()
	lastLoad := time.Now()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		lease, last, lost := m.lease, m.lastAck, m.lost
		m.mu.Unlock()
		select {
		case <-lost:
			if err := m.register(m.ctx); err != nil {
				m.log.Warn("cluster: register again failed", "err", err)
			} else {
				m.log.Info("cluster: registered again with a new lease")
			}
			continue
		default:
		}
		if time.Since(last) > m.o.LeaseTTL {
			m.log.Warn("cluster: no lease keep-alive answer within the TTL; giving up the bundles", "ttl", m.o.LeaseTTL)
			m.loseLease(lease)
			ctx, cancel := context.WithTimeout(m.ctx, m.o.CallTimeout)
			m.c.Revoke(ctx, lease) // in case it is still alive: another broker can take over at once
			cancel()
			continue
		}
		if time.Since(lastLoad) >= m.o.LoadInterval {
			lastLoad = time.Now()
			m.publishLoad()
		}
	}
}

func (m *Manager) publishLoad() {
	m.mu.Lock()
	lease, n, closed := m.lease, len(m.owned), m.closed
	m.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.o.CallTimeout)
	defer cancel()
	if _, err := m.c.Put(ctx, m.brokerKey(m.o.ID), m.infoJSON(n), clientv3.WithLease(lease)); err != nil && m.ctx.Err() == nil {
		m.log.Warn("cluster: publish load failed", "err", err)
	}
}

// loseLease stops serving every owned bundle once the lease is gone.
func (m *Manager) loseLease(lease clientv3.LeaseID) {
	m.mu.Lock()
	if m.lease != lease || m.closed {
		m.mu.Unlock()
		return
	}
	select {
	case <-m.lost:
		m.mu.Unlock()
		return
	default:
	}
	close(m.lost)
	owned := m.owned
	m.owned = map[string]ownedBundle{}
	m.mu.Unlock()
	if len(owned) > 0 {
		m.log.Warn("cluster: lease lost; stopped serving bundles", "bundles", len(owned))
	}
	if m.o.Abandon != nil {
		for _, ob := range owned {
			m.o.Abandon(ob.b)
		}
	}
	for _, ob := range owned {
		m.o.Release(ob.b)
	}
}

// leaseState returns the current lease and the channel closed when it is
// lost (the workers' claims are bound to it).
func (m *Manager) leaseState() (clientv3.LeaseID, chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease, m.lost
}

// Brokers lists the live brokers, by id.
func (m *Manager) Brokers(ctx context.Context) ([]BrokerInfo, error) {
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	resp, err := m.c.Get(cctx, m.o.Prefix+"brokers/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: list brokers: %w", err)
	}
	out := make([]BrokerInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var bi BrokerInfo
		if err := json.Unmarshal(kv.Value, &bi); err != nil {
			return nil, fmt.Errorf("cluster: broker key %s: %w", kv.Key, err)
		}
		out = append(out, bi)
	}
	return out, nil
}

// Self is this broker's registry entry.
func (m *Manager) Self() BrokerInfo {
	return BrokerInfo{ID: m.o.ID, PulsarURL: m.o.PulsarURL, HTTPURL: m.o.HTTPURL, PulsarTLSURL: m.o.PulsarTLSURL, HTTPSURL: m.o.HTTPSURL,
		Listeners: m.o.Listeners}
}

// BundleOf returns the bundle of a topic (full name) of namespace ns.
func (m *Manager) BundleOf(ns, topic string) Bundle { return BundleOf(ns, topic, m.o.Bundles) }

// BundleCount is the number of bundles per namespace.
func (m *Manager) BundleCount() int { return m.o.Bundles }

// Answer is where a topic is served.
type Answer struct {
	Self   bool       // this broker owns (or just took) the bundle
	Broker BrokerInfo // the owner, or the broker to ask (Assign)
	// Assign: the bundle is unowned and Broker was chosen to take it; the
	// client is sent there with authoritative set, so it takes the bundle.
	Assign bool
}

// Lookup answers where topic (of namespace ns) is served. authoritative is
// the flag of the client's LOOKUP: a broker that was chosen for an unowned
// bundle takes it instead of choosing again.
func (m *Manager) Lookup(ctx context.Context, ns, topic string, authoritative bool) (Answer, error) {
	b := m.BundleOf(ns, topic)
	if m.owns(b) {
		return Answer{Self: true, Broker: m.Self()}, nil
	}
	if m.leaseLost() {
		// Cut off from etcd, most likely: answer at once so that the client
		// asks another broker of its service URL instead of waiting here.
		return Answer{}, ErrLeaseLost
	}
	owner, ok, err := m.owner(ctx, b)
	if err != nil {
		return Answer{}, err
	}
	if ok {
		if owner.ID == m.o.ID { // ours from a lease we lost: wait for it to expire
			return Answer{}, fmt.Errorf("cluster: bundle %s still held by this broker's previous lease", b)
		}
		return Answer{Broker: owner}, nil
	}
	m.mu.Lock()
	closing := m.closed
	m.mu.Unlock()
	if !authoritative || closing {
		target, err := m.leastLoaded(ctx)
		if err != nil {
			return Answer{}, err
		}
		if target.ID != m.o.ID {
			return Answer{Broker: target, Assign: true}, nil
		}
	}
	return m.acquire(ctx, b)
}

// ErrLeaseLost answers lookups while this broker has lost its lease and not
// yet registered again.
var ErrLeaseLost = errors.New("cluster: this broker lost its etcd lease and is registering again; retry the lookup on another broker")

// leaseLost reports whether the current lease was lost (not yet replaced).
func (m *Manager) leaseLost() bool {
	m.mu.Lock()
	lost := m.lost
	m.mu.Unlock()
	select {
	case <-lost:
		return true
	default:
		return false
	}
}

func (m *Manager) owns(b Bundle) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.owned[b.String()]
	return ok
}

// owner reads the owner key of b.
func (m *Manager) owner(ctx context.Context, b Bundle) (BrokerInfo, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	resp, err := m.c.Get(cctx, m.ownerKey(b))
	if err != nil {
		return BrokerInfo{}, false, fmt.Errorf("cluster: read owner of %s: %w", b, err)
	}
	if len(resp.Kvs) == 0 {
		return BrokerInfo{}, false, nil
	}
	var r ownerRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return BrokerInfo{}, false, fmt.Errorf("cluster: owner key of %s: %w", b, err)
	}
	return BrokerInfo{ID: r.Broker, PulsarURL: r.PulsarURL, HTTPURL: r.HTTPURL, PulsarTLSURL: r.PulsarTLSURL, HTTPSURL: r.HTTPSURL,
		Listeners: r.Listeners}, true, nil
}

// leastLoaded picks the live broker with the fewest bundles, then topics,
// then the smallest id.
func (m *Manager) leastLoaded(ctx context.Context) (BrokerInfo, error) {
	bs, err := m.Brokers(ctx)
	if err != nil {
		return BrokerInfo{}, err
	}
	m.mu.Lock()
	closing := m.closed
	m.mu.Unlock()
	if closing { // handing over: never choose this broker
		bs = slices.DeleteFunc(bs, func(b BrokerInfo) bool { return b.ID == m.o.ID })
		if len(bs) == 0 {
			return BrokerInfo{}, errors.New("cluster: this broker is shutting down and no other broker is live")
		}
	}
	if len(bs) == 0 {
		return m.Self(), nil
	}
	return slices.MinFunc(bs, func(a, b BrokerInfo) int {
		if a.Bundles != b.Bundles {
			return a.Bundles - b.Bundles
		}
		if a.Topics != b.Topics {
			return a.Topics - b.Topics
		}
		return strings.Compare(a.ID, b.ID)
	}), nil
}

// acquire creates the owner key of b bound to the lease (create revision
// == 0); when another broker won, the answer is that broker.
func (m *Manager) acquire(ctx context.Context, b Bundle) (Answer, error) {
	m.mu.Lock()
	lease, closed := m.lease, m.closed
	m.mu.Unlock()
	if closed {
		return Answer{}, errors.New("cluster: broker is shutting down")
	}
	key := m.ownerKey(b)
	rec, _ := json.Marshal(ownerRecord{Broker: m.o.ID, PulsarURL: m.o.PulsarURL, HTTPURL: m.o.HTTPURL,
		PulsarTLSURL: m.o.PulsarTLSURL, HTTPSURL: m.o.HTTPSURL, Listeners: m.o.Listeners})
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	resp, err := m.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(rec), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return Answer{}, fmt.Errorf("cluster: take bundle %s: %w", b, err)
	}
	if !resp.Succeeded {
		owner, ok, err := m.owner(ctx, b)
		if err != nil {
			return Answer{}, err
		}
		if !ok {
			return Answer{}, fmt.Errorf("cluster: bundle %s changed hands during the lookup; retry", b)
		}
		return Answer{Broker: owner}, nil
	}
	m.mu.Lock()
	if m.lease != lease { // lost meanwhile: the key dies with the old lease
		m.mu.Unlock()
		return Answer{}, fmt.Errorf("cluster: lease lost while taking bundle %s", b)
	}
	m.owned[b.String()] = ownedBundle{b: b, fence: ledgercluster.Fence{Key: key, Rev: resp.Header.Revision}}
	m.mu.Unlock()
	m.log.Info("cluster: bundle taken", "bundle", b.String())
	go m.publishLoad()
	return Answer{Self: true, Broker: m.Self()}, nil
}

// Fence returns the fencing token of topic's bundle when this broker owns
// it (the cluster ledger store's Options.Fence), else ErrNotOwner.
func (m *Manager) Fence(ns, topic string) (ledgercluster.Fence, error) {
	b := m.BundleOf(ns, topic)
	m.mu.Lock()
	defer m.mu.Unlock()
	ob, ok := m.owned[b.String()]
	if !ok {
		return ledgercluster.Fence{}, fmt.Errorf("%w: %s (bundle %s)", ErrNotOwner, topic, b)
	}
	return ob.fence, nil
}

// Owned lists the bundles this broker owns.
func (m *Manager) Owned() []Bundle {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Bundle, 0, len(m.owned))
	for _, ob := range m.owned {
		out = append(out, ob.b)
	}
	slices.SortFunc(out, func(a, b Bundle) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// OwnerOf returns the owner of bundle b (ok false when unowned).
func (m *Manager) OwnerOf(ctx context.Context, b Bundle) (BrokerInfo, bool, error) {
	if m.owns(b) {
		return m.Self(), true, nil
	}
	return m.owner(ctx, b)
}

// Unload gives up bundle b when this broker owns it: its topics stop being
// served (Release), then the owner key is deleted so that the next lookup
// assigns it again. It reports whether b was owned here.
func (m *Manager) Unload(ctx context.Context, b Bundle) (bool, error) {
	m.mu.Lock()
	ob, ok := m.owned[b.String()]
	if ok {
		delete(m.owned, b.String())
	}
	m.mu.Unlock()
	if !ok {
		return false, nil
	}
	m.o.Release(b)
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	_, err := m.c.Txn(cctx).If(ob.fence.Cmp()).Then(clientv3.OpDelete(ob.fence.Key)).Commit()
	if err != nil {
		return true, fmt.Errorf("cluster: release bundle %s: %w", b, err)
	}
	m.log.Info("cluster: bundle released", "bundle", b.String())
	go m.publishLoad()
	return true, nil
}

// Close hands every bundle over (unloads its topics and deletes its owner
// key, so other brokers take it at once), then deregisters.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true // lookups stop choosing this broker
	lease := m.lease
	m.mu.Unlock()
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), m.o.CallTimeout)
	defer cancel()
	if _, err := m.c.Delete(ctx, m.brokerKey(m.o.ID)); err != nil {
		errs = append(errs, fmt.Errorf("cluster: deregister: %w", err))
	}
	for _, b := range m.Owned() {
		if _, err := m.Unload(context.Background(), b); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := m.c.Revoke(ctx, lease); err != nil {
		errs = append(errs, fmt.Errorf("cluster: revoke lease: %w", err))
	}
	m.cancel()
	<-m.done
	return errors.Join(errs...)
}
