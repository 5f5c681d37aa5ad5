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
