package connectors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// The postgres source captures row changes with logical replication
// (pgoutput): an initial snapshot read in the snapshot the slot exported
// when it was created, then the stream. Each change becomes a
// Debezium-style JSON envelope on the table's topic, keyed by the primary
// key. The slot's confirmed flush LSN and the checkpoint in the metadata
// store advance only to the end of a transaction all of whose records
// have receipts, so a restart (of mb or Postgres) resumes without gaps;
// records sent but not confirmed come again (duplicates: dedupe by
// source.lsn and the key).

type outboxSettings struct {
	// Table is schema.table of the outbox.
	Table string `json:"table"`
	// RouteColumn's value names the topic: TopicPattern with {route}.
	RouteColumn   string `json:"routeColumn"`
	KeyColumn     string `json:"keyColumn"`
	PayloadColumn string `json:"payloadColumn"`
	TopicPattern  string `json:"topicPattern"`
}

type postgresSettings struct {
	// ConnectionString is a libpq URL or key=value string without the
	// password (give that as password, a secret reference).
	ConnectionString string `json:"connectionString"`
	Password         string `json:"password"`
	// Tables are schema.table names captured (empty: every table, which
	// needs a publication FOR ALL TABLES, a superuser's).
	Tables []string `json:"tables"`
	// SlotName and PublicationName default to mb_<connector name>.
	SlotName        string `json:"slotName"`
	PublicationName string `json:"publicationName"`
	// TopicPattern names a table's topic: {tenant}, {namespace},
	// {database}, {schema} and {table} are replaced. Default
	// persistent://{tenant}/{namespace}/{database}.{schema}.{table}.
	TopicPattern string `json:"topicPattern"`
	// SnapshotMode is initial (default: existing rows first, op "r") or never.
	SnapshotMode string `json:"snapshotMode"`
	// HeartbeatIntervalMs is how often the confirmed LSN is reported
	// (default 1000); an idle database's WAL is released by it.
	HeartbeatIntervalMs int64           `json:"heartbeatIntervalMs"`
	Outbox              *outboxSettings `json:"outbox"`
	// ValueSchema is none (default), json or avro: the envelopes' schema
	// made from each table's columns is registered (postgres_schema.go);
	// avro also writes the envelopes in Avro's binary encoding
	// (postgres_avro.go).
	ValueSchema string `json:"valueSchema"`
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func (s *postgresSettings) Check() error {
	if s.ConnectionString == "" {
		return errors.New("connectionString is required (e.g. postgres://user@host:5432/db)")
	}
	if _, err := pgconn.ParseConfig(s.ConnectionString); err != nil {
		return fmt.Errorf("connectionString: %w", err)
	}
	for _, n := range []string{s.SlotName, s.PublicationName} {
		if n != "" && !identRE.MatchString(n) {
			return fmt.Errorf("slot or publication name %q: lower-case letters, digits and _", n)
		}
	}
	for _, t := range s.Tables {
		if _, _, err := splitTable(t); err != nil {
			return err
		}
	}
	switch s.SnapshotMode {
	case "":
		s.SnapshotMode = "initial"
	case "initial", "never":
	default:
		return fmt.Errorf("snapshotMode %q: initial or never", s.SnapshotMode)
	}
	if s.HeartbeatIntervalMs < 0 {
		return errors.New("heartbeatIntervalMs must not be negative")
	}
	if s.HeartbeatIntervalMs == 0 {
		s.HeartbeatIntervalMs = 1000
	}
	if err := Choice(&s.ValueSchema, "valueSchema", "none", "json", "avro"); err != nil {
		return err
	}
	if s.TopicPattern == "" {
		s.TopicPattern = "persistent://{tenant}/{namespace}/{database}.{schema}.{table}"
	}
	if o := s.Outbox; o != nil {
		if _, _, err := splitTable(o.Table); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if o.RouteColumn == "" || o.PayloadColumn == "" || !strings.Contains(o.TopicPattern, "{route}") {
			return errors.New("outbox needs routeColumn, payloadColumn and a topicPattern with {route}")
		}
	}
	return nil
}

func splitTable(t string) (string, string, error) {
	schema, table, ok := strings.Cut(t, ".")
	if !ok || schema == "" || table == "" || strings.Contains(table, ".") {
		return "", "", fmt.Errorf("table %q: want schema.table", t)
	}
	return schema, table, nil
}

func init() {
	register(&Builtin{Name: "postgres", Kind: KindSource, TopicsFromConfig: true, SecretKeys: []string{"password"},
		Description: "Postgres change data capture (logical replication, pgoutput): snapshot then stream, Debezium-style envelopes, outbox routing",
		Settings:    func() any { return &postgresSettings{} },
		NewSource:   func(s any) Source { return &pgSource{s: s.(*postgresSettings)} }})
}

type pgSource struct {
	s   *postgresSettings
	env *SourceEnv
	db  string
	// committer positions are transaction end LSNs.
	c       Committer[pglogrepl.LSN]
	schemas schemas
	topics  map[tableKey]string
	rels    map[*pglogrepl.RelationMessage]*relInfo
	// tx and recs are reused for every transaction: its changes and the
	// list of its records.
	tx   *txState
	recs []*Record
}

const (
	ckptLSN      = "lsn"
	ckptSnapshot = "snapshot"
)

func defaultName(name string) string {
	return "mb_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, name)
}

// permissionHint turns a missing privilege into advice.
func permissionHint(err error, what string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42501" || strings.Contains(pe.Message, "permission denied") || strings.Contains(pe.Message, "must be superuser")) {
		return fmt.Errorf("%s: permission denied (%s); the user needs the REPLICATION attribute (ALTER ROLE ... REPLICATION), "+
			"ownership of the captured tables to create the publication (or create it yourself: CREATE PUBLICATION ... FOR TABLE ...), "+
			"and SELECT on the tables for the snapshot", what, pe.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (p *pgSource) connConfig(replication bool) (*pgconn.Config, error) {
	cs := p.s.ConnectionString
	cfg, err := pgconn.ParseConfig(cs)
	if err != nil {
		return nil, err
	}
	if p.s.Password != "" {
		cfg.Password = p.s.Password
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return cfg, nil
}

func (p *pgSource) Run(ctx context.Context, env *SourceEnv) error {
	p.env = env
	p.c = Committer[pglogrepl.LSN]{}
	p.schemas = schemas{avro: p.s.ValueSchema == "avro"}
	p.topics, p.rels, p.tx, p.recs = nil, nil, nil, nil
	slot, pub := p.s.SlotName, p.s.PublicationName
	if slot == "" {
		slot = defaultName(env.Name)
	}
	if pub == "" {
		pub = defaultName(env.Name)
	}
	ccfg, err := p.connConfig(false)
	if err != nil {
		return err
	}
	p.db = ccfg.Database
	pgcfg, _ := pgx.ParseConfig("")
	pgcfg.Config = *ccfg
	conn, err := pgx.ConnectConfig(ctx, pgcfg)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := p.ensurePublication(ctx, conn, pub); err != nil {
		return err
	}
	rcfg, _ := p.connConfig(true)
	repl, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return permissionHint(err, "replication connection")
	}
	defer repl.Close(context.WithoutCancel(ctx))

	start, err := p.prepareSlot(ctx, conn, repl, slot, pub)
	if err != nil {
		return err
	}
	err = pglogrepl.StartReplication(ctx, repl, slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'"}})
	if err != nil {
		return permissionHint(err, "start replication on slot "+slot)
	}
	env.Log.Info("postgres capture streaming", "slot", slot, "publication", pub, "from", start)
	return p.stream(ctx, repl, start)
}

func (p *pgSource) ensurePublication(ctx context.Context, conn *pgx.Conn, pub string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", pub).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %s: %w", pub, err)
	}
	if exists {
		return nil
	}
	tables := p.s.Tables
	if p.s.Outbox != nil && len(tables) > 0 {
		tables = append(append([]string{}, tables...), p.s.Outbox.Table)
	}
	sql := "CREATE PUBLICATION " + pgx.Identifier{pub}.Sanitize() + " FOR ALL TABLES"
	if len(tables) > 0 {
		var names []string
		for _, t := range tables {
			s, tb, _ := splitTable(t)
			names = append(names, pgx.Identifier{s, tb}.Sanitize())
		}
		sql = "CREATE PUBLICATION " + pgx.Identifier{pub}.Sanitize() + " FOR TABLE " + strings.Join(names, ", ")
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return permissionHint(err, "create publication "+pub)
	}
	p.env.Log.Info("publication created", "publication", pub, "sql", sql)
	return nil
}

// prepareSlot makes sure the slot exists and the snapshot was taken, and
// returns where streaming starts.
func (p *pgSource) prepareSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, slot, pub string) (pglogrepl.LSN, error) {
	cp := p.env.Checkpoints
	snapDone, err := cp.Get(ctx, ckptSnapshot)
	if err != nil {
		return 0, err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", slot).Scan(&exists); err != nil {
		return 0, fmt.Errorf("look up slot %s: %w", slot, err)
	}
	wantSnapshot := p.s.SnapshotMode == "initial" && string(snapDone) != "done"
	if exists && wantSnapshot {
		// A snapshot that did not finish cannot be resumed (the exported
		// snapshot died with its session): take it again with a new slot.
		if err := pglogrepl.DropReplicationSlot(ctx, repl, slot, pglogrepl.DropReplicationSlotOptions{}); err != nil {
			return 0, permissionHint(err, "drop unfinished slot "+slot)
		}
		exists = false
	}
	if exists {
		b, err := cp.Get(ctx, ckptLSN)
		if err != nil {
			return 0, err
		}
		if b == nil {
			return 0, nil // the slot's confirmed flush LSN
		}
		return pglogrepl.ParseLSN(string(b))
	}
	action := "NOEXPORT_SNAPSHOT"
	if wantSnapshot {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		return 0, permissionHint(err, "create replication slot "+slot)
	}
	consistent, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, err
	}
	p.env.Log.Info("replication slot created", "slot", slot, "consistent_point", consistent)
	if wantSnapshot {
		if err := p.snapshot(ctx, res.SnapshotName, pub, consistent); err != nil {
			return 0, err
		}
		if err := cp.Put(ctx, ckptSnapshot, []byte("done")); err != nil {
			return 0, err
		}
	}
	if err := cp.Put(ctx, ckptLSN, []byte(consistent.String())); err != nil {
		return 0, err
	}
	return consistent, nil
}

// snapshot reads the publication's tables in the slot's exported snapshot
// and waits for every receipt.
func (p *pgSource) snapshot(ctx context.Context, name, pub string, lsn pglogrepl.LSN) error {
	ccfg, _ := p.connConfig(false)
	pgcfg, _ := pgx.ParseConfig("")
	pgcfg.Config = *ccfg
	conn, err := pgx.ConnectConfig(ctx, pgcfg)
	if err != nil {
		return fmt.Errorf("snapshot connection: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+name+"'"); err != nil {
		return fmt.Errorf("use the slot's snapshot: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2", pub)
	if err != nil {
		return err
	}
	var tables [][2]string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return err
		}
		tables = append(tables, [2]string{s, t})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var wait Committer[int]
	n := 0
	for _, st := range tables {
		keys, err := primaryKey(ctx, tx, st[0], st[1])
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT * FROM "+pgx.Identifier{st[0], st[1]}.Sanitize())
		if err != nil {
			return permissionHint(err, "snapshot of "+st[0]+"."+st[1])
		}
		fields := rows.FieldDescriptions()
		cols := make([]column, len(fields))
		for i, f := range fields {
			cols[i] = column{name: f.Name, oid: f.DataTypeOID}
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return err
			}
			row := make(map[string]any, len(vals))
			for i, f := range fields {
				row[f.Name] = jsonValue(vals[i])
			}
			ev := &change{schema: st[0], table: st[1], op: "r", after: row, lsn: lsn, snapshot: "true", keys: keys, cols: cols}
			recs, err := p.appendRecords(nil, ev)
			if err != nil {
				rows.Close()
				return err
			}
			for _, rec := range recs {
				p.env.Send(ctx, rec, wait.Add(n))
				n++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if err := p.env.Flush(); err != nil {
		return err
	}
	for {
		_, _, err := wait.Committed()
		if err != nil {
			return fmt.Errorf("snapshot send: %w", err)
		}
		if wait.InFlight() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.env.Log.Info("snapshot taken", "tables", len(tables), "rows", n)
	return nil
}

func primaryKey(ctx context.Context, tx pgx.Tx, schema, table string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
		pgx.Identifier{schema, table}.Sanitize())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// stream follows the slot from start.
func (p *pgSource) stream(ctx context.Context, repl *pgconn.PgConn, start pglogrepl.LSN) error {
	relations := map[uint32]*pglogrepl.RelationMessage{}
	types := pgtype.NewMap()
	interval := time.Duration(p.s.HeartbeatIntervalMs) * time.Millisecond
	reported := start
	stored := start
	var tx *txState
	// idleUpTo is a position the server said it had sent everything up to
	// while no transaction was open: confirmable once all before have receipts.
	report := func(force bool) error {
		pos, ok, err := p.c.Committed()
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if !ok || pos < reported {
			pos = reported
		}
		if pos > stored {
			if err := p.env.Checkpoints.Put(context.WithoutCancel(ctx), ckptLSN, []byte(pos.String())); err != nil {
				return err
			}
			stored = pos
		}
		if pos > reported || force {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos}); err != nil {
				return fmt.Errorf("standby status: %w", err)
			}
			reported = pos
		}
		return nil
	}
	// The wait for the next message ends at the next report by a read
	// deadline on the connection, set when the report time moves, and
	// early when ctx ends: a context per message (as ReceiveMessage takes)
	// cost a goroutine hand-off and a timer per row, a fifth of the
	// stream's CPU.
	conn := repl.Conn()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	defer conn.SetReadDeadline(time.Time{})
	var deadline time.Time
	next := time.Now().Add(interval)
	for {
		if time.Now().After(next) {
			if err := report(true); err != nil {
				return err
			}
			next = time.Now().Add(interval)
		}
		if !next.Equal(deadline) {
			if err := conn.SetReadDeadline(next); err != nil {
				return fmt.Errorf("replication stream: %w", err)
			}
			deadline = next
		}
		if ctx.Err() != nil { // ended before the deadline was set
			report(false)
			return nil
		}
		raw, err := repl.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				report(false)
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) || pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("replication stream: %w", err)
		}
		if e, ok := raw.(*pgproto3.ErrorResponse); ok {
			return fmt.Errorf("replication stream: %s (%s)", e.Message, e.Code)
		}
		msg, ok := raw.(*pgproto3.CopyData)
		if !ok || len(msg.Data) == 0 {
			continue
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return err
			}
			if tx == nil && p.c.InFlight() == 0 && k.ServerWALEnd > reported {
				// Everything sent so far has receipts: the WAL up to here
				// holds nothing for us (the heartbeat of an idle database).
				p.c.Add(k.ServerWALEnd)(nil)
			}
			if k.ReplyRequested {
				next = time.Time{}
			}
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return err
			}
			lm, err := pglogrepl.Parse(x.WALData)
			if err != nil {
				return fmt.Errorf("decode pgoutput: %w", err)
			}
			if tx, err = p.handle(ctx, lm, tx, relations, types); err != nil {
				return err
			}
		}
	}
}

// txState buffers a transaction's changes until its commit: their
// checkpoint position is the commit's end LSN. One is reused for every
// transaction (changes by value: no allocation per row for them).
type txState struct {
	xid     uint32
	commit  time.Time
	final   pglogrepl.LSN
	changes []change
}

func (p *pgSource) handle(ctx context.Context, lm pglogrepl.Message, tx *txState, relations map[uint32]*pglogrepl.RelationMessage, types *pgtype.Map) (*txState, error) {
	switch m := lm.(type) {
	case *pglogrepl.RelationMessage:
		relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		if p.tx == nil {
			p.tx = &txState{}
		}
		clear(p.tx.changes) // drop the last transaction's rows for the GC
		if cap(p.tx.changes) > 1<<16 {
			p.tx.changes = nil // nor keep a huge one's list
		}
		*p.tx = txState{xid: m.Xid, commit: m.CommitTime, final: m.FinalLSN, changes: p.tx.changes[:0]}
		return p.tx, nil
	case *pglogrepl.InsertMessage:
		return tx, p.addChange(tx, relations, types, m.RelationID, "c", nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		return tx, p.addChange(tx, relations, types, m.RelationID, "u", m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return tx, p.addChange(tx, relations, types, m.RelationID, "d", m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, ok := relations[id]
			if !ok || tx == nil {
				return tx, fmt.Errorf("truncate of unknown relation %d", id)
			}
			tx.changes = append(tx.changes, change{schema: rel.Namespace, table: rel.RelationName, op: "t", cols: p.relation(rel).cols})
		}
	case *pglogrepl.CommitMessage:
		if tx == nil {
			return nil, errors.New("commit without begin")
		}
		end := m.TransactionEndLSN
		recs := p.recs[:0]
		for i := range tx.changes {
			ch := &tx.changes[i]
			ch.lsn, ch.xid, ch.commit, ch.snapshot = m.CommitLSN, tx.xid, m.CommitTime, "false"
			var err error
			if recs, err = p.appendRecords(recs, ch); err != nil {
				return nil, err
			}
		}
		// One committer entry for the transaction: its end LSN is
		// confirmable once every one of its records has a receipt.
		done := p.c.AddN(end, max(len(recs), 1))
		if len(recs) == 0 {
			done(nil)
		}
		for _, rec := range recs {
			p.env.Send(ctx, rec, done)
		}
		clear(recs)
		p.recs = recs[:0]
		return nil, nil
	}
	return tx, nil
}

func (p *pgSource) addChange(tx *txState, relations map[uint32]*pglogrepl.RelationMessage, types *pgtype.Map, rel uint32, op string, old, cur *pglogrepl.TupleData) error {
	r, ok := relations[rel]
	if !ok {
		return fmt.Errorf("change of unknown relation %d", rel)
	}
	if tx == nil {
		return errors.New("change outside a transaction")
	}
	ri := p.relation(r)
	tx.changes = append(tx.changes, change{schema: r.Namespace, table: r.RelationName, op: op, cols: ri.cols, keys: ri.keys,
		before: decodeTuple(r, old, types), after: decodeTuple(r, cur, types)})
	return nil
}

// relInfo is what a relation message gives every row of it.
type relInfo struct {
	cols []column
	keys []string // the replica identity's columns
}

// relation is r's columns and key columns, made once per relation message.
func (p *pgSource) relation(r *pglogrepl.RelationMessage) *relInfo {
	if ri, ok := p.rels[r]; ok {
		return ri
	}
	ri := &relInfo{cols: make([]column, len(r.Columns))}
	for i, c := range r.Columns {
		ri.cols[i] = column{name: c.Name, oid: c.DataType}
		if c.Flags&1 != 0 {
			ri.keys = append(ri.keys, c.Name)
		}
	}
	if p.rels == nil || len(p.rels) > 10000 {
		p.rels = map[*pglogrepl.RelationMessage]*relInfo{}
	}
	p.rels[r] = ri
	return ri
}

func decodeTuple(r *pglogrepl.RelationMessage, t *pglogrepl.TupleData, types *pgtype.Map) map[string]any {
	if t == nil {
		return nil
	}
	row := make(map[string]any, len(t.Columns))
	for i, col := range t.Columns {
		if i >= len(r.Columns) {
			break
		}
		name := r.Columns[i].Name
		switch col.DataType {
		case 'n':
			row[name] = nil
		case 'u':
			// Unchanged TOASTed value: not sent by Postgres; left out.
		case 't':
			row[name] = decodeText(types, col.Data, r.Columns[i].DataType)
		}
	}
	return row
}

func decodeText(types *pgtype.Map, data []byte, oid uint32) any {
	// The common types directly, to the Go types pgtype gives them: the
	// codec lookup and its conversions cost more than the parse.
	switch oid {
	case pgtype.Int8OID:
		if n, err := strconv.ParseInt(string(data), 10, 64); err == nil {
			return n
		}
	case pgtype.Int4OID:
		if n, err := strconv.ParseInt(string(data), 10, 32); err == nil {
			return int32(n)
		}
	case pgtype.Int2OID:
		if n, err := strconv.ParseInt(string(data), 10, 16); err == nil {
			return int16(n)
		}
	case pgtype.TextOID, pgtype.VarcharOID:
		return string(data)
	case pgtype.BoolOID:
		if len(data) == 1 && (data[0] == 't' || data[0] == 'f') {
			return data[0] == 't'
		}
	}
	if dt, ok := types.TypeForOID(oid); ok {
		v, err := dt.Codec.DecodeValue(types, oid, pgtype.TextFormatCode, data)
		if err == nil {
			return jsonValue(v)
		}
	}
	return string(data)
}

// jsonValue makes a decoded value JSON-friendly.
func jsonValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case pgtype.Numeric:
		b, err := x.MarshalJSON()
		if err == nil {
			return jsonRaw(b)
		}
	case [16]byte: // uuid
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case int64, int32, int16, float64, float32, bool, string, nil, map[string]any, []any:
		return x
	}
	return fmt.Sprint(v)
}

type jsonRaw []byte

func (j jsonRaw) MarshalJSON() ([]byte, error) { return j, nil }

func lsnNumber(l pglogrepl.LSN) string { return strconv.FormatUint(uint64(l), 10) }
