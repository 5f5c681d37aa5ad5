package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrinterListSortsNames(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b}
	if err := p.list([]byte(`["b","a"]`), []string{"b", "a", "c"}); err != nil {
		t.Fatal(err)
	}
	if b.String() != "a\nb\nc\n" {
		t.Fatalf("got %q", b.String())
	}
}

func TestPrinterJSONIsTheServersBody(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b, json: true}
	raw := []byte(`{"z":1,"a":{"n":12345678901234567890}}` + "\n")
	if err := p.object(raw, nil); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"z\": 1,\n  \"a\": {\n    \"n\": 12345678901234567890\n  }\n}\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	// No body: the fallback is encoded instead.
	b.Reset()
	if err := p.object(nil, 3600); err != nil || b.String() != "3600\n" {
		t.Fatalf("fallback: %q %v", b.String(), err)
	}
}

func TestPrinterObjectTable(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b}
	raw := []byte(`{"retention_policies":{"retentionSizeInMB":10,"retentionTimeInMinutes":60},
		"deduplicationEnabled":true,"replication_clusters":["a","b"],"bundles":{},"empty":[],
		"publishers":[{"msgRateIn":1.5}],"x":null}`)
	if err := p.object(raw, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	keys := make([]string, len(lines))
	col := -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("line %q: want KEY VALUE", l)
		}
		keys[i] = f[0]
		// Values start in one column.
		if c := strings.Index(l, f[1]); col == -1 {
			col = c
		} else if c != col {
			t.Fatalf("values not aligned:\n%s", b.String())
		}
	}
	wantKeys := "bundles deduplicationEnabled empty publishers.0.msgRateIn replication_clusters retention_policies.retentionSizeInMB retention_policies.retentionTimeInMinutes x"
	if strings.Join(keys, " ") != wantKeys {
		t.Fatalf("keys %v, want %s", keys, wantKeys)
	}
	if !strings.Contains(b.String(), "replication_clusters") || !strings.Contains(b.String(), "a,b") {
		t.Fatalf("scalar array not joined:\n%s", b.String())
	}
}

func TestPrinterScalarsAndTables(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b}
	if err := p.object([]byte("true"), nil); err != nil || b.String() != "true\n" {
		t.Fatalf("scalar: %q %v", b.String(), err)
	}
	b.Reset()
	if err := p.object([]byte(`["x","y"]`), nil); err != nil || b.String() != "x\ny\n" {
		t.Fatalf("array: %q %v", b.String(), err)
	}
	b.Reset()
	if err := p.table([]string{"ROLE", "ACTIONS"}, [][]string{{"app", "consume,produce"}, {"a-much-longer-role", "produce"}}); err != nil {
		t.Fatal(err)
	}
	want := "ROLE                ACTIONS\napp                 consume,produce\na-much-longer-role  produce\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

func TestDisplayPayload(t *testing.T) {
	for in, want := range map[string]string{
		"hello":      "hello",
		"two\nlines": `"two\nlines"`,
		"\xff\x00":   "base64:/wA=",
	} {
		if got := displayPayload([]byte(in)); got != want {
			t.Errorf("displayPayload(%q) = %q, want %q", in, got, want)
		}
	}
}
