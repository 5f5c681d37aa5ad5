package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/messagebus/messagebus/internal/delayed"
	"github.com/messagebus/messagebus/internal/ledger/local"
	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/pebbledb"
)

// Store names in a VerifyReport, in the order they are checked.
const (
	VerifyJournal  = "journal"
	VerifyIndex    = "index"
	VerifyMetadata = "metadata"
	VerifyDelayed  = "delayed"
)

// Status of a store in a VerifyReport.
const (
	StatusOK         = "ok"          // nothing damaged (warnings may be listed)
	StatusDamaged    = "damaged"     // see Problems and Losses
	StatusMissing    = "missing"     // the store should be there and is not: damage
	StatusAbsent     = "absent"      // not there, and nothing is lost by that
	StatusNotChecked = "not checked" // another store's damage prevents the check
	StatusError      = "error"       // could not be checked (Error says why)
)

// VerifyReport is what Verify found in a data dir.
type VerifyReport struct {
	DataDir string        `json:"dataDir"`
	Stores  []StoreReport `json:"stores"`
}

// StoreReport is what Verify found in one store.
type StoreReport struct {
	Store  string `json:"store"` // VerifyJournal, ...
	Dir    string `json:"dir"`
	Status string `json:"status"`
	// Error is why the store could not be checked, or the damage a Pebble
	// store's check stopped at.
	Error string `json:"error,omitempty"`
	// Problems are the findings, in the order found: the damage, and
	// warnings that are not damage.
	Problems []Problem `json:"problems,omitempty"`
	// Losses say what would be lost, one sentence each.
	Losses []string `json:"losses,omitempty"`
	// Notes are facts that are not damage (a torn tail after a crash).
	Notes []string `json:"notes,omitempty"`
	// Counts of what was read: segments, bytes, ledgers, entries,
	// lostEntries, corruptRecords, quarantinedRecords, tornTailBytes for the
	// journal; records for the Pebble stores; indexes and entries for the
	// delayed-delivery index.
	Counts map[string]int64 `json:"counts,omitempty"`
}

// Damaged reports whether the store is damaged or missing.
func (s StoreReport) Damaged() bool {
	return s.Status == StatusDamaged || s.Status == StatusMissing
}

// Problem is one finding: a message and its attributes (file, offset,
// ledger, entry ids, ...), as the storage code logged it.
type Problem struct {
	Level   string         `json:"level"` // ERROR or WARN
	Message string         `json:"message"`
	Attrs   map[string]any `json:"attrs,omitempty"`
	Text    string         `json:"text"` // message and attributes on one line
}

// Damaged reports whether any store is damaged or missing.
func (r *VerifyReport) Damaged() bool {
	return slices.ContainsFunc(r.Stores, StoreReport.Damaged)
}

// Incomplete reports whether a store could not be checked.
func (r *VerifyReport) Incomplete() bool {
	return slices.ContainsFunc(r.Stores, func(s StoreReport) bool { return s.Status == StatusError })
}

// Verify checks every store of the data dir of a stopped broker without
// changing anything (mb verify): every journal segment, the ledger index,
// the metadata store and the delayed-delivery index. It returns an error,
// and no report, when the data dir cannot be read, is not a data dir, or a
// broker holds it.
//
// metadataStore is the broker's --metadata-store: when it names a store
// outside the data dir (etcd://...), the metadata is not looked for there.
func Verify(dataDir, metadataStore string) (*VerifyReport, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("data dir %s is not a directory", dataDir)
	}
	if _, err := os.ReadDir(dataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ledgerDir := filepath.Join(dataDir, "ledger")
	metaDir := storeDir(dataDir, StoreMetadata)
	if !exists(ledgerDir) && (metadataStore != "" || !exists(metaDir)) {
		return nil, fmt.Errorf("%s is not a MessageBus data dir (it has neither meta/ nor ledger/)", dataDir)
	}
	for _, store := range []string{StoreMetadata, StoreIndex, StoreDelayed} {
		if err := storeInUse(storeDir(dataDir, store)); err != nil {
			return nil, err
		}
	}
	r := &VerifyReport{DataDir: dataDir}
	journal, index := verifyLedger(dataDir)
	md := verifyMetadata(dataDir)
	if metadataStore != "" {
		md = StoreReport{Store: VerifyMetadata, Dir: metadataStore, Status: StatusAbsent,
			Notes: []string{"kept in " + metadataStore + ", not in the data dir: not checked by mb verify (etcd checks its own data: etcdutl check, etcdctl endpoint health)"}}
	}
	r.Stores = append(r.Stores, journal, index, md, verifyDelayed(dataDir))
	return r, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// verifyLedger checks the journal and the ledger index, which are read
// together: the index names the ledgers the journal's records belong to.
func verifyLedger(dataDir string) (journal, index StoreReport) {
	dir := filepath.Join(dataDir, "ledger")
	journal = StoreReport{Store: VerifyJournal, Dir: filepath.Join(dir, "journal")}
	index = StoreReport{Store: VerifyIndex, Dir: storeDir(dataDir, StoreIndex)}
	switch {
	case !exists(dir):
		journal.Status, index.Status = StatusAbsent, StatusAbsent
		journal.Notes = []string{"no ledger/ directory: no message was ever stored on disk (or the broker ran --in-memory)"}
		return journal, index
	case !exists(journal.Dir) || !exists(index.Dir):
		for _, s := range []*StoreReport{&journal, &index} {
			if exists(s.Dir) {
				s.Status = StatusNotChecked
				s.Error = "the journal and the index are checked together"
			} else {
				s.Status = StatusMissing
				s.Error = s.Dir + " does not exist"
			}
		}
		if !exists(index.Dir) {
			journal.Losses = []string{"every message: without the index no record of the journal can be attributed to its topic"}
		} else {
			journal.Losses = []string{"every message stored: the journal is gone"}
		}
		return journal, index
	}
	c := newCollector(dataDir)
	rep, err := local.Verify(dir, slog.New(c))
	var de *pebbledb.DamagedError
	switch {
	case errors.As(err, &de):
		index.pebbleResult(de, c, fmt.Sprintf(`topic names and ids, trim points and cursor positions cannot be read whole; restore the index from a checkpoint: "mb restore-checkpoint --data-dir %s --store index" (README: "Damaged metadata or index stores")`, dataDir))
		journal.Status, journal.Error = StatusNotChecked, "the index is needed to attribute the journal's records to topics"
		return journal, index
	case err != nil:
		journal.Status, journal.Error = StatusError, err.Error()
		index.Status, index.Error = StatusNotChecked, "the journal and the index are checked together"
		return journal, index
	}
	index.Status = StatusOK
	index.Counts = map[string]int64{"ledgers": int64(rep.Ledgers)}
	journal.Problems = c.problems(func(p Problem) bool { return p.Message != tornTailMessage })
	journal.Counts = map[string]int64{
		"segments": int64(rep.Segments), "bytes": rep.Bytes, "entries": rep.Entries,
		"lostEntries": rep.LostEntries, "corruptRecords": rep.CorruptRecords,
		"quarantinedRecords": rep.QuarantinedRecords, "tornTailBytes": rep.TornTail,
	}
	journal.Status = StatusOK
	if !rep.Clean() {
		journal.Status = StatusDamaged
	}
	names := make([]string, 0, len(rep.Lost))
	for name := range rep.Lost {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		journal.Losses = append(journal.Losses, fmt.Sprintf("%d %s of topic %s lost (skipped by reads, never served; their ids are not reused)", rep.Lost[name], plural(rep.Lost[name], "entry", "entries"), name))
	}
	var attributed int64
	for _, n := range rep.Lost {
		attributed += n
	}
	if n := rep.LostEntries - attributed; n > 0 {
		journal.Losses = append(journal.Losses, fmt.Sprintf("%d %s of unknown topics lost", n, plural(n, "entry", "entries")))
	}
	if rep.CorruptRecords > 0 && rep.LostEntries == 0 {
		journal.Losses = append(journal.Losses, fmt.Sprintf("%d damaged %s, no entry lost", rep.CorruptRecords, plural(rep.CorruptRecords, "record or range", "records or ranges")))
	}
	if n := rep.QuarantinedRecords; n > 0 {
		journal.Losses = append(journal.Losses, fmt.Sprintf("%d %s of ledgers the index does not know quarantined: never served, their segments kept", n, plural(n, "record", "records")))
	}
	if rep.TornTail > 0 {
		journal.Notes = append(journal.Notes, fmt.Sprintf("torn tail of %d bytes would be truncated at the next start (a write interrupted by a crash, nothing acknowledged)", rep.TornTail))
	}
	return journal, index
}

// tornTailMessage is how recovery logs a torn tail (a note, not damage).
const tornTailMessage = "torn journal tail truncated"

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func verifyMetadata(dataDir string) StoreReport {
	s := StoreReport{Store: VerifyMetadata, Dir: storeDir(dataDir, StoreMetadata)}
	if !exists(s.Dir) {
		s.Status, s.Error = StatusMissing, s.Dir+" does not exist"
		s.Losses = []string{"every tenant, namespace, policy, permission and partitioned-topic metadata: the next start creates an empty store; restore it from a checkpoint"}
		return s
	}
	c := newCollector(dataDir)
	n, err := meta.VerifyEmbedded(s.Dir, slog.New(c))
	s.pebbleResult(err, c, fmt.Sprintf(`tenants, namespaces, policies and access records cannot be read whole; restore the store from a checkpoint: "mb restore-checkpoint --data-dir %s --store metadata" (README: "Damaged metadata or index stores")`, dataDir))
	s.Counts = map[string]int64{"records": int64(n)}
	return s
}

func verifyDelayed(dataDir string) StoreReport {
	s := StoreReport{Store: VerifyDelayed, Dir: storeDir(dataDir, StoreDelayed)}
	if !exists(s.Dir) {
		s.Status = StatusAbsent
		s.Notes = []string{"created empty at the next start; nothing is lost (it is rebuilt as subscriptions read their backlog)"}
		return s
	}
	c := newCollector(dataDir)
	rep, err := delayed.Verify(s.Dir, slog.New(c))
	s.pebbleResult(err, c, fmt.Sprintf(`nothing: the index is an accelerator, rebuilt as subscriptions read their backlog; move it aside with "mb restore-checkpoint --data-dir %s --store delayed"`, dataDir))
	s.Counts = map[string]int64{"records": rep.Records, "indexes": int64(rep.Indexes), "entries": rep.Entries}
	return s
}

// pebbleResult records the outcome of checking a Pebble store.
func (s *StoreReport) pebbleResult(err error, c *collector, loss string) {
	s.Problems = c.problems(nil)
	var de *pebbledb.DamagedError
	switch {
	case errors.As(err, &de):
		s.Status, s.Error = StatusDamaged, fmt.Sprint(de.Err)
		if de.File != "" {
			file := c.rel(filepath.Join(de.Dir, de.File))
			s.Error = fmt.Sprintf("file %s: %v", file, de.Err)
			if !slices.ContainsFunc(s.Problems, func(p Problem) bool { return strings.Contains(p.Text, de.File) }) {
				s.Problems = append(s.Problems, Problem{Level: "ERROR", Message: fmt.Sprint(de.Err), Attrs: map[string]any{"file": file}, Text: s.Error})
			}
		}
		s.Losses = []string{loss}
	case err != nil:
		s.Status, s.Error = StatusError, err.Error()
	default:
		s.Status = StatusOK
	}
}

// collector is a slog.Handler that keeps the WARN and ERROR records the
// storage code logs while it checks a store: they are the findings.
type collector struct {
	dataDir string
	attrs   []slog.Attr
	mu      *sync.Mutex
	list    *[]Problem
}

func newCollector(dataDir string) *collector {
	return &collector{dataDir: dataDir, mu: &sync.Mutex{}, list: &[]Problem{}}
}

func (c *collector) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (c *collector) Handle(_ context.Context, r slog.Record) error {
	p := Problem{Level: r.Level.String(), Message: r.Message, Attrs: map[string]any{}}
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		v := a.Value.Resolve().Any()
		if a.Key == "file" {
			if s, ok := v.(string); ok {
				v = c.rel(s)
			}
		}
		if a.Key == "component" {
			return true
		}
		p.Attrs[a.Key] = v
		b.WriteString(" " + a.Key + "=")
		s := fmt.Sprint(v)
		if s == "" || strings.ContainsAny(s, " =\"") {
			s = strconv.Quote(s)
		}
		b.WriteString(s)
		return true
	}
	for _, a := range c.attrs {
		add(a)
	}
	r.Attrs(add)
	p.Text = b.String()
	c.mu.Lock()
	*c.list = append(*c.list, p)
	c.mu.Unlock()
	return nil
}

func (c *collector) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *c
	n.attrs = append(slices.Clip(c.attrs), attrs...)
	return &n
}

func (c *collector) WithGroup(string) slog.Handler { return c.WithAttrs(nil) }

// problems returns the findings that keep says to keep (nil: all).
func (c *collector) problems(keep func(Problem) bool) []Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Problem
	for _, p := range *c.list {
		if keep == nil || keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// rel makes a path relative to the data dir, when it is inside it.
func (c *collector) rel(path string) string {
	if r, err := filepath.Rel(c.dataDir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
