package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// Source is the part of a topic's ledger a replicator reads.
type Source interface {
	Read(ctx context.Context, from int64, maxEntries, maxBytes int) ([]ledger.Entry, error)
	FirstEntryID() int64
	LastEntryID() int64
	Changed() <-chan struct{}
}

// Config describes one replicator.
type Config struct {
	// Topic is the full topic name, the same on both clusters.
	Topic         string
	LocalCluster  string
	RemoteCluster string
	// LedgerID is the source ledger's id, the first half of the source
	// position sent with each entry.
	LedgerID int64
	// PartitionedTopic and Partitions are set for a partition of a
	// partitioned topic: the remote must have it partitioned too.
	PartitionedTopic string
	Partitions       int
	Source           Source
	// Start is the cursor's mark-delete position: the last entry sent (or
	// passed over); sending starts after it.
	Start int64
	// Save persists the cursor's mark-delete position. It is called from
	// the replicator's goroutine, at most every SaveInterval, and on Stop.
	Save func(markDelete int64)
	// Schema returns the source topic's schema of a schema_version found
	// in an entry; nil: schema versions are sent unchanged.
	Schema func(ctx context.Context, version []byte) (*pb.Schema, error)
	// Endpoint resolves the remote cluster, from its current registration,
	// at each connection attempt (so updated credentials apply at the next).
	Endpoint func(ctx context.Context) (Endpoint, error)
	// OnError is told of each failed attempt (metrics); may be nil.
	OnError func(err error)
	Logger  *slog.Logger

	// Timing and window; zero values take the defaults below.
	DialTimeout    time.Duration
	ReceiptTimeout time.Duration
	MinBackoff     time.Duration
	MaxBackoff     time.Duration
	MaxPending     int
	MaxPendingSize int
	SaveInterval   time.Duration
	// EndpointCheckInterval is how often a connected replicator reads the
	// remote's registration again; when it changed (address, credentials,
	// TLS) the link reconnects with the new one.
	EndpointCheckInterval time.Duration
}

const (
	defaultDialTimeout    = 10 * time.Second
	defaultReceiptTimeout = 30 * time.Second
	defaultMinBackoff     = 100 * time.Millisecond
	defaultMaxBackoff     = 5 * time.Second
	defaultMaxPending     = 1000
	defaultMaxPendingSize = 16 << 20
	defaultSaveInterval   = 100 * time.Millisecond
	defaultEndpointCheck  = 5 * time.Second
	readBatch             = 256
	readBatchBytes        = 4 << 20
	sendTimeout           = 30 * time.Second
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, defaultDialTimeout)
	def(&c.ReceiptTimeout, defaultReceiptTimeout)
	def(&c.MinBackoff, defaultMinBackoff)
	def(&c.MaxBackoff, defaultMaxBackoff)
	def(&c.SaveInterval, defaultSaveInterval)
	def(&c.EndpointCheckInterval, defaultEndpointCheck)
	if c.MaxPending <= 0 {
		c.MaxPending = defaultMaxPending
	}
	if c.MaxPendingSize <= 0 {
		c.MaxPendingSize = defaultMaxPendingSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Replicator sends one topic's entries to one remote cluster.
type Replicator struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	markDelete atomic.Int64
	connected  atomic.Bool
	msgsOut    atomic.Int64
	bytesOut   atomic.Int64
	skipped    atomic.Int64
	rate       rateSampler

	subMu      sync.Mutex
	subUpdates map[string]map[string]string
	subSignal  chan struct{}
	subWG      sync.WaitGroup

	mu             sync.Mutex
	lastErr        string
	lastErrAt      time.Time
	connectedSince time.Time
	remoteAddr     string
	// triedConfig is the registration of the last connection attempt
	// (Endpoint.config): a retry waits less once it changed.
	triedConfig string
}

// Start runs a replicator until Stop.
func Start(cfg Config) *Replicator {
	cfg.setDefaults()
	r := &Replicator{cfg: cfg, done: make(chan struct{}), subSignal: make(chan struct{}, 1)}
	r.log = cfg.Logger.With("topic", cfg.Topic, "remote_cluster", cfg.RemoteCluster)
	r.markDelete.Store(cfg.Start)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run()
	r.subWG.Add(1)
	go r.subscriptionLoop()
	return r
}

// Stop ends the replicator and saves its cursor.
func (r *Replicator) Stop() {
	r.cancel()
	<-r.done
	r.subWG.Wait()
}

// Remote is the remote cluster's name.
func (r *Replicator) Remote() string { return r.cfg.RemoteCluster }

// MarkDelete is the last entry replicated (or passed over).
func (r *Replicator) MarkDelete() int64 { return r.markDelete.Load() }

func (r *Replicator) run() {
	defer close(r.done)
	saved := r.markDelete.Load()
	defer func() {
		if md := r.markDelete.Load(); md != saved {
			r.cfg.Save(md)
		}
	}()
	backoff := r.cfg.MinBackoff
	for r.ctx.Err() == nil {
		before := r.markDelete.Load()
		start := time.Now()
		err := r.session(&saved)
		r.connected.Store(false)
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.lastErr, r.lastErrAt = err.Error(), time.Now()
		r.mu.Unlock()
		if r.cfg.OnError != nil {
			r.cfg.OnError(err)
		}
		r.log.Warn("replication to remote cluster interrupted; resuming after the last acknowledged entry",
			"err", err, "resume_after", r.markDelete.Load())
		if r.markDelete.Load() != before || time.Since(start) > 10*time.Second {
			backoff = r.cfg.MinBackoff
		}
		if r.awaitRetry(backoff) {
			backoff = r.cfg.MinBackoff
		} else {
			backoff = min(backoff*2, r.cfg.MaxBackoff)
		}
	}
}

// registrationPoll is how often a replicator waiting to reconnect reads the
// remote's registration again (through the Manager's cache).
const registrationPoll = time.Second

// awaitRetry waits backoff before the next attempt, or less when the
// remote's registration changes meanwhile: an operator who fixes a wrong
// address or credential sees replication resume within about a second, not
// after a backoff of up to MaxBackoff. It reports whether the registration
// changed.
func (r *Replicator) awaitRetry(backoff time.Duration) bool {
	timer := time.NewTimer(backoff)
	defer timer.Stop()
	poll := time.NewTicker(registrationPoll)
	defer poll.Stop()
	r.mu.Lock()
	tried := r.triedConfig
	r.mu.Unlock()
	for {
		select {
		case <-r.ctx.Done():
			return false
		case <-timer.C:
			return false
		case <-poll.C:
			ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
			ep, err := r.cfg.Endpoint(ctx)
			cancel()
			if err == nil && ep.config != tried {
				return true
			}
		}
	}
}

// pendingEntry is one entry between the cursor and what was sent: sent and
// awaiting its receipt, or passed over (send false) behind one that is.
type pendingEntry struct {
	id    int64
	seq   uint64
	send  bool
	size  int
	msgs  int
	since time.Time
}

// session connects and replicates until something fails; it returns why.
func (r *Replicator) session(saved *int64) error {
	dctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
	ep, err := r.cfg.Endpoint(dctx)
	if err != nil {
		cancel()
		return fmt.Errorf("resolve cluster %s: %w", r.cfg.RemoteCluster, err)
	}
	r.mu.Lock()
	r.triedConfig = ep.config
	r.mu.Unlock()
	if r.cfg.Partitions > 0 {
		if err := ensurePartitioned(dctx, ep, r.cfg.PartitionedTopic, r.cfg.Partitions); err != nil {
			cancel()
			return err
		}
	}
	name := geo.CursorPrefix + r.cfg.LocalCluster + "-->" + r.cfg.RemoteCluster
	l, err := dialLink(dctx, ep, r.cfg.Topic, name, r.cfg.MaxPending)
	cancel()
	if err != nil {
		return err
	}
	defer l.close()
	// Stop must not wait for a write stuck on a slow remote.
	defer context.AfterFunc(r.ctx, l.close)()
	r.mu.Lock()
	r.connectedSince, r.remoteAddr = time.Now(), l.addr
	r.mu.Unlock()
	r.connected.Store(true)
	r.log.Info("replicating to remote cluster", "addr", l.addr, "from_entry", r.markDelete.Load()+1)

	src := r.cfg.Source
	next := r.markDelete.Load() + 1
	// The remote's version of each source schema version, learnt on this
	// link (the remote may have lost or changed its registry meanwhile).
	schemas := map[string][]byte{}
	var pending []pendingEntry
	var seq uint64
	// The SEND frames of one read, written at once: frames holds them but
	// for large payloads, which stay in the entries read and are written
	// from there (tails: each after frames[:end]).
	var frames []byte
	var tails []frameTail
	var bufs net.Buffers
	zeroCopy := ep.TLS == nil // TLS copies anyway: one record per buffer would cost more
	sendCmd := &pb.CommandSend{ProducerId: proto.Uint64(producerID), SequenceId: new(uint64), NumMessages: new(int32)}
	cmd := &pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: sendCmd}
	pendingBytes := 0
	lastSave := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	check := time.NewTicker(r.cfg.EndpointCheckInterval)
	defer check.Stop()

	advance := func() {
		for len(pending) > 0 && !pending[0].send {
			r.markDelete.Store(pending[0].id)
			pending = pending[1:]
		}
		if len(pending) == 0 && next-1 > r.markDelete.Load() {
			r.markDelete.Store(next - 1)
		}
		if md := r.markDelete.Load(); md != *saved && time.Since(lastSave) >= r.cfg.SaveInterval {
			r.cfg.Save(md)
			*saved, lastSave = md, time.Now()
		}
	}
	for {
		changed := src.Changed()
		// Fill the window, once it is at most half full: refilling it one
		// entry per receipt would cost a read and a write per entry.
		refill := len(pending) <= r.cfg.MaxPending/2 && pendingBytes <= r.cfg.MaxPendingSize/2
		for refill && len(pending) < r.cfg.MaxPending && pendingBytes < r.cfg.MaxPendingSize && next <= src.LastEntryID() {
			if first := src.FirstEntryID(); next < first {
				// Retention deleted entries before they were replicated:
				// they cannot be sent. Said loudly; the rest goes on.
				r.log.Error("entries trimmed before replication; they are lost to the remote cluster", "from", next, "to", first-1)
				r.skipped.Add(first - next)
				next = first
				continue
			}
			es, err := src.Read(r.ctx, next, min(readBatch, r.cfg.MaxPending-len(pending)), readBatchBytes)
			if err != nil {
				if errors.Is(err, ledger.ErrTrimmed) {
					continue
				}
				return fmt.Errorf("read entry %d: %w", next, err)
			}
			if len(es) == 0 {
				break
			}
			frames, tails = frames[:0], tails[:0]
			now := time.Now()
			for _, e := range es {
				p, ok, err := r.inspect(e, l, schemas)
				if errors.Is(err, errSchema) {
					return err
				}
				if err != nil {
					r.log.Error("entry cannot be replicated; passed over", "entry", e.ID, "err", err)
					r.skipped.Add(1)
				}
				pe := pendingEntry{id: e.ID, send: ok, since: now}
				if ok {
					seq++
					pe.seq, pe.msgs = seq, p.msgs
					*sendCmd.SequenceId, *sendCmd.NumMessages = seq, int32(p.msgs)
					sendCmd.Marker = nil
					if p.marker {
						sendCmd.Marker = proto.Bool(true)
					}
					var tail []byte
					frames, tail, pe.size = r.appendFrame(frames, cmd, p, e.ID, zeroCopy)
					if tail != nil {
						tails = append(tails, frameTail{end: len(frames), data: tail})
					}
					pendingBytes += pe.size
				}
				pending = append(pending, pe)
				next = e.ID + 1
			}
			if len(frames) > 0 {
				bufs = gather(bufs[:0], frames, tails)
				if err := l.flush(bufs); err != nil {
					return err
				}
			}
		}
		advance()
		var wake <-chan struct{}
		if next > src.LastEntryID() {
			wake = changed
		}
		if len(pending) > 0 {
			timer.Reset(max(time.Until(pending[0].since.Add(r.cfg.ReceiptTimeout)), 0))
		} else if wake == nil {
			timer.Reset(50 * time.Millisecond) // an entry not readable yet
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-l.done:
			return l.err
		case <-wake:
		case <-check.C:
			if err := r.endpointChanged(ep); err != nil {
				return err
			}
		case <-timer.C:
			if len(pending) > 0 && time.Since(pending[0].since) >= r.cfg.ReceiptTimeout {
				return fmt.Errorf("no receipt for entry %d within %v", pending[0].id, r.cfg.ReceiptTimeout)
			}
		case rc := <-l.receipts:
			// Take every receipt already there, then refill.
			for more := true; more; {
				// Receipts come in send order; anything else is a broken link.
				if len(pending) == 0 || !pending[0].send || pending[0].seq != rc.seq {
					return fmt.Errorf("receipt for sequence id %d out of order", rc.seq)
				}
				head := pending[0]
				pending = pending[1:]
				pendingBytes -= head.size
				r.markDelete.Store(head.id)
				r.msgsOut.Add(int64(head.msgs))
				r.bytesOut.Add(int64(head.size))
				advance()
				select {
				case rc = <-l.receipts:
				default:
					more = false
				}
			}
		}
	}
}

// frameTail is a payload written from its entry after frames[:end].
type frameTail struct {
	end  int
	data []byte
}

// gather lists the pieces of a read's frames in order for one writev.
func gather(bufs net.Buffers, frames []byte, tails []frameTail) net.Buffers {
	prev := 0
	for _, t := range tails {
		bufs = append(bufs, frames[prev:t.end], t.data)
		prev = t.end
	}
	if prev < len(frames) {
		bufs = append(bufs, frames[prev:])
	}
	return bufs
}

// errSchema marks a schema that could not be carried to the remote: the
// session ends and retries (the entry is not passed over: its messages
// would reach the remote without a schema the remote knows).
var errSchema = errors.New("schema")

// remoteSchemaVersion maps a source schema version to the remote's,
// registering the schema there at first use on this link.
func (r *Replicator) remoteSchemaVersion(l *link, v []byte, schemas map[string][]byte) ([]byte, error) {
	if rv, ok := schemas[string(v)]; ok {
		return rv, nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
	defer cancel()
	s, err := r.cfg.Schema(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("read source schema: %w", err)
	}
	rv, err := l.getOrCreateSchema(ctx, r.cfg.Topic, s)
	if err != nil {
		return nil, err
	}
	schemas[string(v)] = rv
	r.log.Info("schema registered on the remote cluster", "source_version", v, "remote_version", rv)
	return rv, nil
}

// endpointChanged reads the remote's registration again and says whether
// it differs from ep, the one in use.
func (r *Replicator) endpointChanged(ep Endpoint) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
	defer cancel()
	now, err := r.cfg.Endpoint(ctx)
	if err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		return nil // keep a working link; the next attempt reports it
	}
	if now.config != ep.config {
		return fmt.Errorf("cluster %s's registration changed: reconnecting with it", r.cfg.RemoteCluster)
	}
	return nil
}
