package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// runVerify runs mb verify on dataDir and returns its exit code and output
// (stdout and stderr together).
func runVerify(t *testing.T, dataDir string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	if metadataStore != "" {
		args = append(args, "--metadata-store", metadataStore)
	}
	cmd := exec.Command(mbBinary, append([]string{"verify", "--data-dir", dataDir}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// treeHash hashes every file under dir but Pebble's LOCK files (which a
// lock check opens): mb verify must change nothing.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestVerifyCleanDataDir(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	putTenant(t, p.webURL, "verify-tenant")
	client := newClient(t, p.brokerURL)
	pr, err := client.CreateProducer(pulsar.ProducerOptions{Topic: uniqueTopic(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := pr.Send(context.Background(), &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	pr.Close()
	client.Close()
	if code, _ := p.terminate(t); code != 0 {
		t.Fatalf("broker exit %d", code)
	}

	before := treeHash(t, dir)
	code, out := runVerify(t, dir)
	t.Logf("mb verify:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d on a clean data dir", code)
	}
	wantMeta := "metadata (" + filepath.Join(dir, "meta") + "): OK, "
	if metadataStore != "" {
		wantMeta = "kept in " + metadataStore + ", not in the data dir: not checked"
	}
	for _, want := range []string{
		"journal (" + filepath.Join(dir, "ledger", "journal") + "): OK, ",
		"index (" + filepath.Join(dir, "ledger", "index") + "): OK, ",
		wantMeta,
		"delayed (" + filepath.Join(dir, "delayed") + "): OK, ",
		"10 entries readable",
		"OK: nothing damaged",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if after := treeHash(t, dir); after != before {
		t.Fatal("mb verify changed the data dir")
	}

	code, out = runVerify(t, dir, "--output", "json")
	var r struct {
		Stores []struct{ Store, Status string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("--output json: exit %d, %v:\n%s", code, err, out)
	}
	if len(r.Stores) != 4 || slices.ContainsFunc(r.Stores, func(s struct{ Store, Status string }) bool {
		return s.Status != "ok" && (s.Store != "metadata" || metadataStore == "" || s.Status != "absent")
	}) {
		t.Fatalf("stores %+v, want 4 ok", r.Stores)
	}
}

func TestVerifyRefusesRunningBroker(t *testing.T) {
	dir := t.TempDir()
	startProc(t, dir, 0, 0)
	code, out := runVerify(t, dir)
	if code != 2 || !strings.Contains(out, "is the broker running? stop it first") {
		t.Fatalf("exit %d, output:\n%s\nwant exit 2 and a refusal", code, out)
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"missing data dir": {"verify", "--data-dir", filepath.Join(t.TempDir(), "nope")},
		"not a data dir":   {"verify", "--data-dir", t.TempDir()},
		"unknown flag":     {"verify", "--bogus"},
		"argument":         {"verify", "extra"},
		"bad output":       {"verify", "--data-dir", t.TempDir(), "--output", "yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(mbBinary, args...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit %d, want 2; output:\n%s", code, out)
			}
		})
	}
}

// A bit flipped in the metadata store's WAL of a stopped broker: exit 1,
// naming the store and the file.
func TestVerifyDamagedMetadataWAL(t *testing.T) {
	if metadataStore != "" {
		t.Skip("the metadata store is etcd (MB_TEST_METADATA_STORE=etcd), not in the data dir")
	}
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0)
	putTenant(t, p.webURL, "in-the-wal")
	if code, _ := p.terminate(t); code != 0 {
		t.Fatalf("broker exit %d", code)
	}
	wal := newestWAL(t, filepath.Join(dir, "meta"))
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	b[30] ^= 0x10
	if err := os.WriteFile(wal, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runVerify(t, dir)
	t.Logf("mb verify:\n%s", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"metadata (" + filepath.Join(dir, "meta") + "): DAMAGED",
		filepath.Join("meta", filepath.Base(wal)),
		"mb restore-checkpoint --data-dir " + dir + " --store metadata",
		"journal (" + filepath.Join(dir, "ledger", "journal") + "): OK",
		"DAMAGED: metadata",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// journalRecord is one record of a journal segment, found by its magic.
type journalRecord struct {
	file          string
	off, dataOff  int64
	size          int64
	ledger, entry int64
	key           string // the message key the record's data holds
}

var recordKey = regexp.MustCompile(`key-\d-\d{4}`)

// segmentRecords lists the records of a segment by scanning for the record
// magic (record.go): a header whose segment number is the file's and whose
// length fits. The test's payloads never contain the magic.
func segmentRecords(t *testing.T, path string) []journalRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	fmt.Sscanf(filepath.Base(path), "%d.log", &seq)
	var out []journalRecord
	for off := 64; off+40 <= len(b); {
		i := bytes.Index(b[off:], []byte("MBJ"))
		if i < 0 {
			break
		}
		off += i
		if off+40 > len(b) || (b[off+3] != 'R' && b[off+3] != 'G') || binary.LittleEndian.Uint64(b[off+8:]) != seq {
			off++
			continue
		}
		size := int64(binary.LittleEndian.Uint32(b[off+4:]))
		if int64(off)+40+size > int64(len(b)) {
			off++
			continue
		}
		r := journalRecord{file: path, off: int64(off), dataOff: int64(off) + 40, size: size,
			ledger: int64(binary.LittleEndian.Uint64(b[off+16:])), entry: int64(binary.LittleEndian.Uint64(b[off+24:]))}
		r.key = recordKey.FindString(string(b[r.dataOff : r.dataOff+size]))
		out = append(out, r)
		off += 40 + int(size)
	}
	return out
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x08
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// TestStorageIntegrity is the storage-integrity promise end to end: after one
// bit is flipped in a record of a sealed journal segment and one in the last
// segment of a stopped broker, mb verify names what is lost; after a restart
// every acknowledged message is served but the two whose records held the
// flipped bits; the loss is reported (internal stats, metrics, health); a
// subscription created before the damage moves past the lost entries; a new
// topic never serves the old topics' records.
func TestStorageIntegrity(t *testing.T) {
	for _, stop := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(stop, func(t *testing.T) { storageIntegrity(t, stop) })
	}
}

func storageIntegrity(t *testing.T, stop string) {
	const (
		nTopics   = 3
		perTopic  = 667 // 2,001 messages
		subName   = "before-damage"
		segSize   = 256 << 10
		padLength = 300
	)
	args := []string{"--journal-segment-size", fmt.Sprint(segSize)}
	dir := t.TempDir()
	p := startProc(t, dir, 0, 0, args...)
	client := newClient(t, p.brokerURL)
	base := uniqueTopic(t)
	topics := make([]string, nTopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("%s-%d", base, i)
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topics[i], SubscriptionName: subName, Type: pulsar.Shared})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// A new subscription reaches the index with the next cursor flush (up
	// to 500 ms later), so a kill -9 right after Subscribe loses it: stop
	// gracefully once to make it durable before the run.
	client.Close()
	if code, _ := p.terminate(t); code != 0 {
		t.Fatalf("broker exit %d", code)
	}
	p = startProc(t, dir, p.brokerPort, p.httpPort, args...)
	client = newClient(t, p.brokerURL)
	payload := func(key string) []byte { return []byte(key + "|" + strings.Repeat("x", padLength)) }
	topicOf := map[string]int{} // key -> topic index
	var wg sync.WaitGroup
	errs := make(chan error, nTopics)
	for ti, topic := range topics {
		pr, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range perTopic {
			topicOf[fmt.Sprintf("key-%d-%04d", ti, i)] = ti
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pr.Close()
			for i := range perTopic {
				key := fmt.Sprintf("key-%d-%04d", ti, i)
				if _, err := pr.Send(context.Background(), &pulsar.ProducerMessage{Key: key, Payload: payload(key)}); err != nil {
					errs <- fmt.Errorf("send %s: %w", key, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err) // every message must be acknowledged
	}
	client.Close()
	if stop == "SIGTERM" {
		if code, _ := p.terminate(t); code != 0 {
			t.Fatalf("broker exit %d", code)
		}
	} else {
		p.kill(t)
	}

	// One record in the middle of the first (sealed) segment and one, of
	// another topic, in the middle of the last segment: the last bit of
	// the message's data is flipped.
	segs, _ := filepath.Glob(filepath.Join(dir, "ledger", "journal", "*.log"))
	slices.Sort(segs)
	if len(segs) < 2 {
		t.Fatalf("%d journal segments; the run needs a sealed one", len(segs))
	}
	pick := func(path string, avoid int) journalRecord {
		var msgs []journalRecord
		for _, r := range segmentRecords(t, path) {
			if r.key != "" && (avoid < 0 || topicOf[r.key] != avoid) {
				msgs = append(msgs, r)
			}
		}
		if len(msgs) < 3 {
			var sizes []string
			for _, s := range segs {
				if fi, err := os.Stat(s); err == nil {
					sizes = append(sizes, fmt.Sprintf("%s:%d", filepath.Base(s), fi.Size()))
				}
			}
			t.Fatalf("%s holds %d message records to choose from (segments %v)", path, len(msgs), sizes)
		}
		return msgs[len(msgs)/2]
	}
	first := pick(segs[0], -1)
	// The last segment, unless the run ended just after a roll-over and it
	// holds too few records; then the one before it.
	lastSeg := segs[len(segs)-1]
	if n := len(segmentRecords(t, lastSeg)); n < 10 && len(segs) > 2 {
		lastSeg = segs[len(segs)-2]
	}
	second := pick(lastSeg, topicOf[first.key])
	damaged := []journalRecord{first, second}
	lost := map[string]bool{}
	for _, r := range damaged {
		flipBit(t, r.file, r.dataOff+r.size-1)
		lost[r.key] = true
		t.Logf("flipped a bit of %s (%s entry %d) in %s at offset %d", r.key, topics[topicOf[r.key]], r.entry, filepath.Base(r.file), r.dataOff+r.size-1)
	}

	before := treeHash(t, dir)
	code, out := runVerify(t, dir)
	t.Logf("mb verify:\n%s", out)
	if code != 1 {
		t.Fatalf("mb verify exit %d, want 1", code)
	}
	for _, r := range damaged {
		topic := topics[topicOf[r.key]]
		line := fmt.Sprintf("file=%s offset=%d ", filepath.Join("ledger", "journal", filepath.Base(r.file)), r.off)
		if !strings.Contains(out, line) || !strings.Contains(out, fmt.Sprintf("ledger=%s ", topic)) || !strings.Contains(out, fmt.Sprintf(" entry=%d\n", r.entry)) {
			t.Errorf("output does not name the record %s (%s entry %d)", line, topic, r.entry)
		}
		if want := fmt.Sprintf("lost: 1 entry of topic %s lost", topic); !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(out, "DAMAGED: journal\n") && !strings.Contains(out, "DAMAGED: journal ") {
		t.Errorf("output does not end with the journal damaged")
	}
	if after := treeHash(t, dir); after != before {
		t.Fatal("mb verify changed the data dir")
	}

	p = startProc(t, dir, p.brokerPort, p.httpPort, args...)
	if status, body := httpGet(t, p.webURL+"/admin/v2/brokers/health"); status != 200 || !strings.HasPrefix(body, "degraded:") {
		t.Errorf("health: %d %q, want 200 degraded:", status, body)
	}
	if v := metricValue(t, p.webURL, "mb_storage_corrupt_records_total"); v < 1 {
		t.Errorf("mb_storage_corrupt_records_total %v, want >= 1", v)
	}
	for ti, topic := range topics {
		want := int64(0)
		for _, r := range damaged {
			if topicOf[r.key] == ti {
				want++
			}
		}
		_, body := httpGet(t, p.webURL+"/admin/v2/persistent/"+strings.TrimPrefix(topic, "persistent://")+"/internalStats")
		var st struct{ LostEntries int64 }
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("internalStats of %s: %v: %s", topic, err, body)
		}
		if st.LostEntries != want {
			t.Errorf("internalStats of %s: lostEntries %d, want %d", topic, st.LostEntries, want)
		}
	}

	client = newClient(t, p.brokerURL)
	for ti, topic := range topics {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: subName, Type: pulsar.Shared})
		if err != nil {
			t.Fatal(err)
		}
		expect := perTopic
		for key := range lost {
			if topicOf[key] == ti {
				expect--
			}
		}
		seen := map[string]bool{}
		for _, m := range receiveN(t, c, expect, 60*time.Second) {
			key := m.Key()
			switch {
			case topicOf[key] != ti || !bytes.Equal(m.Payload(), payload(key)):
				t.Fatalf("%s: message %q with payload %q is not one sent to it", topic, key, m.Payload())
			case lost[key]:
				t.Fatalf("%s: served %q, whose record is damaged", topic, key)
			case seen[key]:
				t.Fatalf("%s: %q delivered twice", topic, key)
			}
			seen[key] = true
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
		// The subscription moved past the lost entry: nothing is left.
		statsURL := p.webURL + "/admin/v2/persistent/" + strings.TrimPrefix(topic, "persistent://") + "/stats"
		pollHTTP(t, statsURL, "backlog of "+subName+" reaches 0", func(status int, body string) bool {
			var st struct {
				Subscriptions map[string]struct{ MsgBacklog int64 }
			}
			return status == 200 && json.Unmarshal([]byte(body), &st) == nil && st.Subscriptions[subName].MsgBacklog == 0
		})
		c.Close()
	}

	// A topic created now gets a new ledger id: it serves its own message only.
	fresh := uniqueTopic(t) + "-fresh"
	pr, err := client.CreateProducer(pulsar.ProducerOptions{Topic: fresh})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("fresh-0")}); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	rd, err := client.CreateReader(pulsar.ReaderOptions{Topic: fresh, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for rd.HasNext() {
		m, err := rd.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload()))
	}
	if !slices.Equal(got, []string{"fresh-0"}) {
		t.Fatalf("new topic %s serves %d messages %.3q, want only fresh-0", fresh, len(got), got)
	}
}
