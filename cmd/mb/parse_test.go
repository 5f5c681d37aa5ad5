package main

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0":     0,
		"4096":  4096,
		"10k":   10 << 10,
		"10K":   10 << 10,
		"10M":   10 << 20,
		"10m":   10 << 20,
		"10MB":  10 << 20,
		"10MiB": 10 << 20,
		"1G":    1 << 30,
		"16g":   16 << 30,
		"3T":    3 << 40,
		"-1":    -1,
		" 2M ":  2 << 20,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "10X", "-2", "-5M", "1.5G", "10 M", "99999999999T"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseRelativeTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0":     0,
		"120":   120 * time.Second,
		"30s":   30 * time.Second,
		"100m":  100 * time.Minute,
		"3h":    3 * time.Hour,
		"2d":    48 * time.Hour,
		"5w":    5 * 7 * 24 * time.Hour,
		"1y":    365 * 24 * time.Hour,
		"1h30m": 90 * time.Minute,
		"500ms": 500 * time.Millisecond,
	} {
		got, err := parseRelativeTime(in)
		if err != nil || got != want {
			t.Errorf("parseRelativeTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "-1", "-5m", "3x", "1.5h.", "99999999999y"} {
		if got, err := parseRelativeTime(in); err == nil {
			t.Errorf("parseRelativeTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseTimeLimit(t *testing.T) {
	for in, want := range map[string]int64{"-1": -1, "0": 0, "90": 90, "1h": 3600, "1500ms": 1} {
		got, err := parseTimeLimit(in)
		if err != nil || got != want {
			t.Errorf("parseTimeLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseTimeLimit("-2"); err == nil {
		t.Error("parseTimeLimit(-2) accepted")
	}
}

func TestRetentionPolicies(t *testing.T) {
	cases := []struct {
		size, time string
		want       utils.RetentionPolicies
	}{
		{"10M", "1h", utils.RetentionPolicies{RetentionSizeInMB: 10, RetentionTimeInMinutes: 60}},
		{"1G", "2d", utils.RetentionPolicies{RetentionSizeInMB: 1024, RetentionTimeInMinutes: 2880}},
		{"-1", "-1", utils.RetentionPolicies{RetentionSizeInMB: -1, RetentionTimeInMinutes: -1}},
		{"0", "0", utils.RetentionPolicies{}},
		// Pulsar truncates to whole megabytes and minutes.
		{"1000k", "90", utils.RetentionPolicies{RetentionSizeInMB: 0, RetentionTimeInMinutes: 1}},
	}
	for _, c := range cases {
		got, err := retentionPolicies(c.size, c.time)
		if err != nil || got != c.want {
			t.Errorf("retentionPolicies(%q, %q) = %+v, %v; want %+v", c.size, c.time, got, err, c.want)
		}
	}
	if _, err := retentionPolicies("10Q", "1h"); err == nil {
		t.Error("bad size accepted")
	}
	if _, err := retentionPolicies("10M", "soon"); err == nil {
		t.Error("bad time accepted")
	}
}

func TestParseActions(t *testing.T) {
	got, err := parseActions("produce, Consume,produce,,functions")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"produce", "consume", "functions"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, in := range []string{"", ",", "produce,admin", "write"} {
		if got, err := parseActions(in); err == nil {
			t.Errorf("parseActions(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseProperties(t *testing.T) {
	got, err := parseProperties([]string{"a=1", "b=x=y", "c="})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["a"] != "1" || got["b"] != "x=y" || got["c"] != "" {
		t.Fatalf("got %v", got)
	}
	if got, err := parseProperties(nil); err != nil || got != nil {
		t.Fatalf("no properties: %v %v", got, err)
	}
	for _, in := range []string{"novalue", "=v", " =v"} {
		if _, err := parseProperties([]string{in}); err == nil {
			t.Errorf("parseProperties(%q) accepted", in)
		}
	}
}

func TestParseMessageID(t *testing.T) {
	if id, err := parseMessageID("earliest"); err != nil || id != utils.Earliest {
		t.Errorf("earliest: %v %v", id, err)
	}
	if id, err := parseMessageID("Latest"); err != nil || id != utils.Latest {
		t.Errorf("latest: %v %v", id, err)
	}
	id, err := parseMessageID("12:34")
	if err != nil || id.LedgerID != 12 || id.EntryID != 34 || id.PartitionIndex != -1 {
		t.Errorf("12:34: %+v %v", id, err)
	}
	id, err = parseMessageID("12:34:2")
	if err != nil || id.PartitionIndex != 2 {
		t.Errorf("12:34:2: %+v %v", id, err)
	}
	for _, in := range []string{"", "12", "a:b", "1:2:3:4:5", "first"} {
		if _, err := parseMessageID(in); err == nil {
			t.Errorf("parseMessageID(%q) accepted", in)
		}
	}
}

func TestParsePointInTime(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if got, err := parsePointInTime("10m", now); err != nil || !got.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("10m: %v %v", got, err)
	}
	if got, err := parsePointInTime("2024-05-01T10:00:00Z", now); err != nil || !got.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339: %v %v", got, err)
	}
	if _, err := parsePointInTime("yesterday", now); err == nil {
		t.Error("yesterday accepted")
	}
}

func TestParseSubscriptionType(t *testing.T) {
	for in, want := range map[string]pulsar.SubscriptionType{
		"exclusive": pulsar.Exclusive, "Shared": pulsar.Shared, "FAILOVER": pulsar.Failover,
		"key_shared": pulsar.KeyShared, "Key_Shared": pulsar.KeyShared, "key-shared": pulsar.KeyShared,
	} {
		if got, err := parseSubscriptionType(in); err != nil || got != want {
			t.Errorf("parseSubscriptionType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseSubscriptionType("broadcast"); err == nil {
		t.Error("broadcast accepted")
	}
	if p, err := parseInitialPosition("Earliest"); err != nil || p != pulsar.SubscriptionPositionEarliest {
		t.Errorf("earliest: %v %v", p, err)
	}
	if _, err := parseInitialPosition("middle"); err == nil {
		t.Error("middle accepted")
	}
}

func TestParseBacklogQuota(t *testing.T) {
	q, typ, err := parseBacklogQuota("10G", "", "producer_request_hold", "destination_storage")
	if err != nil || typ != utils.DestinationStorage || q.LimitSize != 10<<30 || q.Policy != utils.ProducerRequestHold {
		t.Errorf("size quota: %+v %v %v", q, typ, err)
	}
	q, typ, err = parseBacklogQuota("", "1h", "consumer_backlog_eviction", "message_age")
	if err != nil || typ != utils.MessageAge || q.LimitTime != 3600 || q.Policy != utils.ConsumerBacklogEviction {
		t.Errorf("age quota: %+v %v %v", q, typ, err)
	}
	for _, c := range [][4]string{
		{"", "", "producer_exception", "destination_storage"}, // no limit
		{"10M", "", "producer_exception", "message_age"},      // no limit time
		{"10M", "", "drop", "destination_storage"},
		{"10M", "", "producer_exception", "disk"},
		{"10Q", "", "producer_exception", "destination_storage"},
	} {
		if _, _, err := parseBacklogQuota(c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("parseBacklogQuota%q accepted", c)
		}
	}
}
