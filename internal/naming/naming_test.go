package naming

import (
	"errors"
	"testing"
)

func TestParseTopic(t *testing.T) {
	good := map[string]string{
		"my-topic":                           "persistent://public/default/my-topic",
		"tenant/ns/t1":                       "persistent://tenant/ns/t1",
		"persistent://a/b/c":                 "persistent://a/b/c",
		"non-persistent://a/b/c":             "non-persistent://a/b/c",
		"persistent://a.b/c=d/with space ok": "persistent://a.b/c=d/with space ok",
	}
	for in, want := range good {
		tp, err := ParseTopic(in)
		if err != nil {
			t.Errorf("ParseTopic(%q): %v", in, err)
			continue
		}
		if tp.String() != want {
			t.Errorf("ParseTopic(%q) = %q, want %q", in, tp.String(), want)
		}
	}
	bad := []string{"", "a/b", "http://a/b/c", "persistent://a/b", "persistent://a/b/", "persistent://a b/c/d",
		"persistent://a/b/c/d", "persistent://a/b/c\x00", "a/b/c/d"}
	for _, in := range bad {
		if _, err := ParseTopic(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTopic(%q) err = %v, want ErrInvalid", in, err)
		}
	}
}

func TestPartitions(t *testing.T) {
	tp, _ := ParseTopic("persistent://a/b/orders")
	p := tp.Partition(3)
	if p.String() != "persistent://a/b/orders-partition-3" || p.PartitionIndex() != 3 {
		t.Fatalf("partition: %v %d", p, p.PartitionIndex())
	}
	if p.Partitioned() != tp {
		t.Fatalf("Partitioned() = %v", p.Partitioned())
	}
	if tp.PartitionIndex() != -1 {
		t.Fatal("plain topic has a partition index")
	}
	odd, _ := ParseTopic("persistent://a/b/x-partition-abc")
	if odd.PartitionIndex() != -1 || odd.Partitioned() != odd {
		t.Fatal("non-numeric suffix treated as partition")
	}
}

func TestParseNamespace(t *testing.T) {
	if n, err := ParseNamespace("public/default"); err != nil || n.String() != "public/default" {
		t.Fatal(n, err)
	}
	for _, s := range []string{"public", "a/b/c", "/b", "a/"} {
		if _, err := ParseNamespace(s); err == nil {
			t.Errorf("ParseNamespace(%q) accepted", s)
		}
	}
}
