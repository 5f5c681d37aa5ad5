package connectors

import (
	"reflect"
	"testing"
)

func TestReadyShards(t *testing.T) {
	// 0 split into 1 and 2; 1 and 2 merged into 3; 4 is a root.
	shards := []Shard{{ID: "s0"}, {ID: "s1", Parent: "s0"}, {ID: "s2", Parent: "s0"},
		{ID: "s3", Parent: "s1", AdjacentParent: "s2"}, {ID: "s4"}}
	for _, c := range []struct {
		running, ended []string
		want           []string
	}{
		{nil, nil, []string{"s0", "s4"}},
		{[]string{"s0", "s4"}, nil, nil},
		{[]string{"s4"}, []string{"s0"}, []string{"s1", "s2"}},
		{nil, []string{"s0", "s1"}, []string{"s2", "s4"}},
		{nil, []string{"s0", "s1", "s2", "s4"}, []string{"s3"}},
	} {
		set := func(l []string) map[string]bool {
			m := map[string]bool{}
			for _, s := range l {
				m[s] = true
			}
			return m
		}
		if got := ReadyShards(shards, set(c.running), set(c.ended)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("running %v ended %v: %v, want %v", c.running, c.ended, got, c.want)
		}
	}
	// A trimmed parent does not hold its child back.
	if got := ReadyShards([]Shard{{ID: "s5", Parent: "gone"}}, nil, nil); !reflect.DeepEqual(got, []string{"s5"}) {
		t.Errorf("orphan: %v", got)
	}
}
