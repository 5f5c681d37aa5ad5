package connectors

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPostgresChange is the capture's own work per row change, the
// broker left out: a pgoutput insert decoded into a change, at its
// transaction's commit turned into a record (the envelope's JSON).
func BenchmarkPostgresChange(b *testing.B) {
	for _, valueSchema := range []string{"none", "json"} {
		b.Run("valueSchema="+valueSchema, func(b *testing.B) {
			s := &postgresSettings{ConnectionString: "postgres://u@h/db", Tables: []string{"public.load"}, ValueSchema: valueSchema}
			if err := s.Check(); err != nil {
				b.Fatal(err)
			}
			p := &pgSource{s: s, db: "db", schemas: schemas{}}
			p.env = &SourceEnv{Tenant: "public", Namespace: "default", Name: "bench", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			p.env.send = func(_ context.Context, _ *Record, done func(error)) { done(nil) }
			rel := &pglogrepl.RelationMessage{RelationID: 1, Namespace: "public", RelationName: "load", Columns: []*pglogrepl.RelationMessageColumn{
				{Flags: 1, Name: "id", DataType: pgtype.Int8OID}, {Name: "account", DataType: pgtype.Int4OID},
				{Name: "amount", DataType: pgtype.Int4OID}, {Name: "note", DataType: pgtype.TextOID}}}
			relations := map[uint32]*pglogrepl.RelationMessage{1: rel}
			types := pgtype.NewMap()
			const perTx = 1000
			inserts := make([]*pglogrepl.InsertMessage, perTx)
			for i := range inserts {
				inserts[i] = &pglogrepl.InsertMessage{RelationID: 1, Tuple: &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{
					{DataType: 't', Data: []byte(strconv.Itoa(1000000 + i))}, {DataType: 't', Data: []byte(strconv.Itoa(i % 1000))},
					{DataType: 't', Data: []byte(strconv.Itoa(i % 97))}, {DataType: 't', Data: []byte("benchmark row")}}}}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for n := 0; n < b.N; n += perTx {
				tx, _ := p.handle(ctx, &pglogrepl.BeginMessage{Xid: 7, FinalLSN: 100, CommitTime: time.Now()}, nil, relations, types)
				for _, m := range inserts[:min(perTx, b.N-n)] {
					var err error
					if tx, err = p.handle(ctx, m, tx, relations, types); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := p.handle(ctx, &pglogrepl.CommitMessage{CommitLSN: 100, TransactionEndLSN: 120, CommitTime: time.Now()}, tx, relations, types); err != nil {
					b.Fatal(err)
				}
			}
			// Rows per second of this process's CPU time: robust to a
			// shared machine.
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
		})
	}
}

// pgoutputInsert is the wire form of a pgoutput (protocol 1) insert into
// relation 1 of text-format columns.
func pgoutputInsert(vals ...string) []byte {
	b := []byte{'I', 0, 0, 0, 1, 'N', 0, byte(len(vals))}
	for _, v := range vals {
		b = append(b, 't', 0, 0, byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	return b
}

// BenchmarkPostgresStream is the capture's work per row change from the
// replication stream's bytes: pglogrepl.Parse of the pgoutput messages of
// transactions of 10 inserts (begin, rows, commit), the decoding, the
// envelope at the commit and the committer's bookkeeping, sent to a no-op
// whose receipts come at once. The broker and the connection are left out.
func BenchmarkPostgresStream(b *testing.B) {
	s := &postgresSettings{ConnectionString: "postgres://u@h/db", Tables: []string{"public.load"}}
	if err := s.Check(); err != nil {
		b.Fatal(err)
	}
	p := &pgSource{s: s, db: "db", schemas: schemas{}}
	p.env = &SourceEnv{Tenant: "public", Namespace: "default", Name: "bench", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p.env.send = func(_ context.Context, _ *Record, done func(error)) { done(nil) }
	rel := []byte{'R', 0, 0, 0, 1}
	rel = append(rel, "public\x00load\x00"...)
	rel = append(rel, 'd', 0, 4)
	for i, c := range []struct {
		name string
		oid  uint32
	}{{"id", pgtype.Int8OID}, {"account", pgtype.Int4OID}, {"amount", pgtype.Int4OID}, {"note", pgtype.TextOID}} {
		rel = append(rel, byte(min(i, 1)^1))
		rel = append(rel, c.name+"\x00"...)
		rel = append(rel, byte(c.oid>>24), byte(c.oid>>16), byte(c.oid>>8), byte(c.oid), 0xff, 0xff, 0xff, 0xff)
	}
	const perTx = 10
	begin := []byte{'B', 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}
	commit := []byte{'C', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}
	relations := map[uint32]*pglogrepl.RelationMessage{}
	types := pgtype.NewMap()
	ctx := context.Background()
	feed := func(data []byte, tx *txState) *txState {
		m, err := pglogrepl.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if tx, err = p.handle(ctx, m, tx, relations, types); err != nil {
			b.Fatal(err)
		}
		return tx
	}
	feed(rel, nil)
	inserts := make([][]byte, 1000)
	for i := range inserts {
		inserts[i] = pgoutputInsert(strconv.Itoa(1000000+i), strconv.Itoa(i%1000), strconv.Itoa(i%97), "benchmark row")
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for n := 0; n < b.N; n += perTx {
		tx := feed(begin, nil)
		for k := 0; k < perTx && n+k < b.N; k++ {
			tx = feed(inserts[(n+k)%len(inserts)], tx)
		}
		feed(commit, tx)
	}
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	if _, ok, err := p.c.Committed(); !ok || err != nil || p.c.InFlight() != 0 {
		b.Fatalf("committed %v err %v in flight %d", ok, err, p.c.InFlight())
	}
}
