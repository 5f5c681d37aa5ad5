package kinesis

import (
	"bytes"
	"testing"
)

func TestDeaggregate(t *testing.T) {
	agg := Aggregate([]string{"a", "b", "a"}, [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	recs, err := deaggregate(agg)
	if err != nil {
		t.Fatal(err)
	}
	want := []userRecord{{"a", []byte("1")}, {"b", []byte("2")}, {"a", []byte("3")}}
	if len(recs) != len(want) {
		t.Fatalf("got %d records", len(recs))
	}
	for i := range want {
		if recs[i].PartitionKey != want[i].PartitionKey || !bytes.Equal(recs[i].Data, want[i].Data) {
			t.Fatalf("record %d: %+v", i, recs[i])
		}
	}
	// A wrong checksum, a plain record and a truncated one are not aggregated.
	bad := append([]byte{}, agg...)
	bad[len(bad)-1] ^= 1
	for _, d := range [][]byte{bad, []byte("plain"), agg[:len(agg)-3], kplMagic} {
		if _, err := deaggregate(d); err != errNotAggregated {
			t.Fatalf("%x: %v", d, err)
		}
	}
}

// FuzzDeaggregate: any bytes give records or errNotAggregated, never a
// panic; what Aggregate packs comes back.
func FuzzDeaggregate(f *testing.F) {
	f.Add(Aggregate([]string{"k"}, [][]byte{[]byte("v")}), "k", []byte("v"))
	f.Add([]byte("plain"), "", []byte{})
	f.Fuzz(func(t *testing.T, b []byte, key string, data []byte) {
		deaggregate(b)
		recs, err := deaggregate(Aggregate([]string{key, "x"}, [][]byte{data, b}))
		if err != nil || len(recs) != 2 || recs[0].PartitionKey != key || !bytes.Equal(recs[0].Data, data) || !bytes.Equal(recs[1].Data, b) {
			t.Fatalf("round trip: %+v %v", recs, err)
		}
	})
}
