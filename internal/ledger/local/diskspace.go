package local

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/loglimit"
)

// A full disk is a state the journal leaves by itself, not a failure that
// needs a reopen:
//
//   - A write or sync that fails for lack of space (ENOSPC, EDQUOT) fails its
//     group and every append already queued behind it (an appender never sees
//     a success after the failure of an earlier append), and puts the journal
//     in the disk-full state: appends fail at once with an error wrapping
//     ledger.ErrDiskFull.
//   - The segment the group failed in is sealed where the group began (a zero
//     header in a preallocated segment, a truncation otherwise; best effort)
//     and never written again: after a failed write or fdatasync, what the
//     disk holds past that point is unknown. The next write rolls to a new
//     segment. A record of the failed group that reached the disk anyway is
//     whole and checksummed (recovery indexes it) or ends the records of the
//     sealed segment (recovery stops there).
//   - The ids of a failed group are not reused while the store is open: the
//     ledger's index marks them lost (ledgerState.publishLocked) and Read
//     skips them, as ids lost to corruption. Reusing them would be unsafe: a
//     record of the failed group that did reach the disk would shadow, at
//     recovery, the new entry given the same id.
//   - A watcher (Store.watchDisk) checks the file system's free space every
//     diskCheckInterval, after a failure and after every few MiB written.
//     Below Options.MinFreeDisk appends are refused the same way, before the
//     file system itself is full, so that cursors and metadata can still be
//     written; above it they are accepted again. After a failed write they
//     are accepted again once a backoff has passed (diskRetryMin, doubling up
//     to diskRetryMax while failures repeat) and statfs shows space
//     (diskRetryFree beyond the minimum).
//   - The preparer zero-fills a spare only when that leaves the reserve free
//     (journal.spareFits).

const (
	diskCheckInterval = 100 * time.Millisecond
	diskCheckBytes    = 4 << 20 // bytes written between checks, at most
	diskRetryMin      = 250 * time.Millisecond
	diskRetryMax      = 5 * time.Second
	diskRetryFree     = 1 << 20 // free bytes needed, besides the minimum, to retry after a failed write
	diskLogInterval   = 10 * time.Second
)

// PreallocLowDisk is the reason given to Options.OnPreallocSkipped when a
// spare segment is not zero-filled for lack of free space.
const PreallocLowDisk = "low_disk"

// DiskReserve is an amount of free disk space: Percent of the file system's
// size when Percent > 0, else Bytes.
type DiskReserve struct {
	Bytes   int64
	Percent float64
}

// ParseDiskReserve parses a size in bytes with an optional unit (B, KB, MB,
// GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024; K, M, G, T
// as KiB...) or a percentage of the file system ("5%").
func ParseDiskReserve(s string) (DiskReserve, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f >= 100 {
			return DiskReserve{}, fmt.Errorf("disk reserve %q: want a percentage in [0, 100)", s)
		}
		return DiskReserve{Percent: f}, nil
	}
	num := strings.TrimRight(s, "KMGTiBkmgtb ")
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if mult == 0 || err != nil || f < 0 || f*mult > 1<<62 {
		return DiskReserve{}, fmt.Errorf("disk reserve %q: want bytes with an optional unit (512MiB, 2GB) or a percentage (5%%)", s)
	}
	return DiskReserve{Bytes: int64(f * mult)}, nil
}

func (r DiskReserve) String() string {
	if r.Percent > 0 {
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	}
	return formatBytes(uint64(max(r.Bytes, 0)))
}

// of returns the reserve on a file system of total bytes.
func (r DiskReserve) of(total uint64) uint64 {
	if r.Percent > 0 {
		return uint64(float64(total) * r.Percent / 100)
	}
	return uint64(max(r.Bytes, 0))
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// diskState is the journal's view of disk space.
type diskState struct {
	// Set before the journal starts.
	dir      string                                 // where free space is checked, for messages
	stat     func() (free, total uint64, err error) // nil: unknown
	minFree  DiskReserve
	retryMin time.Duration
	onSkip   func(reason string)
	onState  func(full bool) // tests
	kick     chan struct{}   // asks the watcher for a check now
	skipLog  *loglimit.Limiter
	stateLog *loglimit.Limiter

	// Guarded by journal.mu. journal.err is the error appends fail with.
	stuck       bool      // a failure other than lack of space: refused until reopened
	full        bool      // journal.err is a disk-full error
	retryAt     time.Time // full after a failed write: not before then; zero when full for the free-space check only
	lastFailure time.Time
	backoff     time.Duration

	// Owned by the committer.
	sealed  bool  // the active segment was sealed after a failure: roll before writing
	written int64 // bytes written since the watcher was last asked for a check
}

func (d *diskState) init(opts *Options, dir string) {
	d.dir, d.minFree, d.onSkip, d.onState = dir, opts.MinFreeDisk, opts.OnPreallocSkipped, opts.onDiskState
	d.stat = opts.diskSpace
	if d.stat == nil {
		d.stat = func() (uint64, uint64, error) { return statDisk(dir) }
	}
	d.retryMin = opts.diskRetry
	if d.retryMin <= 0 {
		d.retryMin = diskRetryMin
	}
	d.kick = make(chan struct{}, 1)
	d.skipLog, d.stateLog = loglimit.New(diskLogInterval), loglimit.New(diskLogInterval)
}

// failNoSpace puts the journal in the disk-full state after a write or sync
// failed for lack of space; it fails the appends already queued. The caller
// holds j.mu.
func (j *journal) failNoSpace(cause error) {
	d := &j.space
	now := time.Now()
	if now.Sub(d.lastFailure) > 4*diskRetryMax {
		d.backoff = d.retryMin
	} else {
		d.backoff = min(2*d.backoff, diskRetryMax)
	}
	d.lastFailure, d.retryAt = now, now.Add(d.backoff)
	j.err = fmt.Errorf("%w: %w; appends refused until space is freed", ledger.ErrDiskFull, cause)
	j.setFullLocked(true)
	j.takeBackground() // waiting background appends fail with the queued ones
	for i := range j.queue {
		if it := &j.queue[i]; it.l != nil && it.err == nil {
			it.err = j.err // their ids are lost, as the failed group's
		}
	}
	kick(d.kick)
}

// setFullLocked records a change of the disk-full state. The caller holds j.mu.
func (j *journal) setFullLocked(full bool) {
	d := &j.space
	if d.full == full {
		return
	}
	d.full = full
	if ok, n := d.stateLog.Allow(); ok {
		if full {
			j.log.Error("journal refusing appends", "err", j.err, "suppressed", n)
		} else {
			j.log.Info("disk space available again; journal accepting appends", "suppressed", n)
		}
	}
	if d.onState != nil {
		d.onState(full)
	}
}

// checkDisk updates the disk-full state from the free space of the store's
// file system.
func (j *journal) checkDisk() {
	d := &j.space
	free, total, err := d.stat()
	var minFree uint64
	if err == nil {
		minFree = d.minFree.of(total)
	}
	low := err == nil && free < minFree
	// After a failed write, free space as statfs tells it, else the backoff
	// alone, says when to try again.
	retry := !time.Now().Before(d.retryAt) && (err != nil || free >= max(minFree, diskRetryFree))
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case d.stuck:
	case low && !d.full:
		limit := formatBytes(minFree)
		if d.minFree.Percent > 0 {
			limit += " (" + d.minFree.String() + " of the file system)"
		}
		j.err = fmt.Errorf("%w: %s free in %s, below the minimum of %s; appends refused until space is freed",
			ledger.ErrDiskFull, formatBytes(free), d.dir, limit)
		d.retryAt = time.Time{}
		j.setFullLocked(true)
	case !low && d.full && (d.retryAt.IsZero() || retry):
		j.err = nil
		j.setFullLocked(false)
	}
}

// watchDisk runs checkDisk every diskCheckInterval and when kicked, until the
// store closes. Run it as a goroutine counted in s.bg.
func (s *Store) watchDisk() {
	defer s.bg.Done()
	t := time.NewTicker(diskCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.journal.space.kick:
		case <-s.stopBg:
			return
		}
		s.journal.checkDisk()
	}
}

// rollIfSealed starts a new segment when the active one was sealed after a
// failure. Run by the committer before it writes.
func (j *journal) rollIfSealed() error {
	if !j.space.sealed {
		return nil
	}
	if err := j.roll(); err != nil {
		return err
	}
	j.space.sealed = false
	return nil
}

// sealAfterFailure ends the records of the active segment where the failed
// group began: seg and size are the active segment and its size before the
// group was written. Nothing is written to the segment after it. Run by the
// committer.
func (j *journal) sealAfterFailure(seg *segment, size int64) {
	if j.space.sealed {
		return // already sealed; the roll to a new segment failed
	}
	at := int64(0) // the group rolled to this segment: all of it is the group's
	if j.active == seg {
		at = size
	}
	f := j.active.file
	var err error
	if j.activePrealloc {
		_, err = f.WriteAt(zeroHeader[:], at) // allocated space: needs no more
	} else {
		err = f.Truncate(at)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		j.log.Warn("journal segment not sealed after a failed write; recovery ends its records at the first invalid one",
			"segment", j.active.seq, "offset", at, "err", err)
	}
	j.activeSize = at
	j.space.sealed = true
}

// noteWritten counts what a group wrote (seg and size as for
// sealAfterFailure) and asks for a disk check every diskCheckBytes. Run by
// the committer.
func (j *journal) noteWritten(seg *segment, size int64) {
	d := &j.space
	if j.active == seg {
		d.written += j.activeSize - size
	} else {
		d.written += j.activeSize
	}
	if d.written >= diskCheckBytes {
		d.written = 0
		kick(d.kick)
	}
}

// spareFits reports whether zero-filling a spare segment leaves the reserve
// free: the minimum free space, and never less than 1% of the file system.
// A skipped spare is counted; the preparer is asked again later.
func (j *journal) spareFits() bool {
	d := &j.space
	free, total, err := d.stat()
	if err != nil {
		return true
	}
	reserve := max(d.minFree.of(total), total/100)
	if free >= reserve && free-reserve >= uint64(j.segSize) {
		return true
	}
	j.skipSpare(fmt.Errorf("%s free, a segment is %s and %s must stay free", formatBytes(free), formatBytes(uint64(j.segSize)), formatBytes(reserve)))
	return false
}

func (j *journal) skipSpare(why error) {
	d := &j.space
	if d.onSkip != nil {
		d.onSkip(PreallocLowDisk)
	}
	if ok, n := d.skipLog.Allow(); ok {
		j.log.Warn("journal segment not preallocated for lack of disk space; the next segment is appended to", "why", why, "suppressed", n)
	}
}

// health returns the journal's problem, "" when there is none.
func (j *journal) health() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		return ""
	}
	return j.err.Error()
}

// DiskFull reports whether appends are refused for lack of disk space.
func (s *Store) DiskFull() bool {
	j := s.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.space.full && !j.space.stuck
}

// Health implements ledger.HealthReporter: the reasons the store serves in a
// degraded way (appends refused for lack of disk space, or a journal failure
// that needs a reopen), empty when there are none.
func (s *Store) Health() []string {
	var problems []string
	if p := s.journal.health(); p != "" {
		problems = append(problems, p)
	}
	return append(problems, s.damageProblems()...)
}

var _ ledger.HealthReporter = (*Store)(nil)

// DiskSpace returns the bytes available and the size of the file system
// holding the journal, as statfs tells them now (for the metrics: alerts
// on a disk nearly full fire before sends are refused).
func (s *Store) DiskSpace() (free, total uint64, err error) {
	return s.journal.space.stat()
}
