package test

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/messagebus/messagebus/internal/testutil/s3test"
)

// diskUsage is the bytes allocated to the files under dir (du).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // deleted while walking
			}
			return err
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOffloadRetentionAcrossTiers: offloaded entries leave local disk (the
// journal segments are reclaimed: the data dir shrinks); once consumed and
// past retention they leave the manifest and, after the deletion lag, the
// object store, even when the broker is killed (SIGKILL) in between.
func TestOffloadRetentionAcrossTiers(t *testing.T) {
	gw := s3test.Start(t)
	objects := gw.Bucket(t, "retention", nil)
	dir := t.TempDir()
	args := []string{"--offload-driver", "s3", "--offload-bucket", "retention", "--offload-endpoint", gw.Endpoint,
		"--offload-path-style", "--offload-prefix", "mb", "--offload-deletion-lag-ms", "0",
		"--journal-segment-size", "1048576", "--policy-check-interval", "100ms"}
	p := startProc(t, dir, 0, 0, args...)
	client := newClient(t, p.brokerURL)
	topic := uniqueTopic(t)
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8000 // 8 MB in 1 KiB messages: 8 journal segments
	payload := []byte(strings.Repeat("r", 1024))
	var last pulsar.MessageID
	for i := range n {
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload}, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
			if i == n-1 {
				last = id
			}
		})
	}
	if err := prod.FlushWithCtx(context.Background()); err != nil {
		t.Fatal(err)
	}
	prod.Close()
	before := diskUsage(t, dir)
	if before < n*1024 {
		t.Fatalf("data dir holds %d bytes, want at least %d", before, n*1024)
	}

	// The journal holds the entries; Pebble's preallocated logs (about
	// 9 MB) and the journal's spare segment stay whatever is stored.
	journal := filepath.Join(dir, "ledger", "journal")
	journalBefore := diskUsage(t, journal)
	admin := newProcAdmin(t, p)
	offloadAndWait(t, admin, topic, offloadID(last, 1), utils.SUCCESS)
	if journalBefore < 7<<20 {
		t.Fatalf("journal holds %d bytes, want 8 segments of 1 MiB", journalBefore)
	}
	// What stays: the segment being written and the spare.
	adminEventually(t, "local journal segments reclaimed", func() bool { return diskUsage(t, journal) <= 5<<19 })
	t.Logf("du of the data dir: %d bytes before the offload, %d after (journal: %d, %d)",
		before, diskUsage(t, dir), journalBefore, diskUsage(t, journal))
	list, err := objects.List(context.Background(), "mb/")
	if err != nil || len(list) == 0 {
		t.Fatalf("objects %v %v", list, err)
	}

	// Consumed entries past retention (none) are trimmed from both tiers;
	// the objects wait for the namespace's deletion lag.
	ns := strings.Join(strings.Split(strings.TrimPrefix(topic, "persistent://"), "/")[:2], "/")
	expectHTTP(t, http.MethodPost, p.webURL+"/admin/v2/namespaces/"+ns+"/offloadDeletionLagMs", "600000", http.StatusNoContent)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := c.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		c.Ack(m)
	}
	c.Close()
	stats := restTopic(p.webURL, topic) + "/stats"
	adminEventually(t, "offloaded entries trimmed", func() bool {
		var st struct{ OffloadedStorageSize int64 }
		return json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, stats, "", http.StatusOK)), &st) == nil && st.OffloadedStorageSize == 0
	})
	if l, err := objects.List(context.Background(), "mb/"); err != nil || len(l) != len(list) {
		t.Fatalf("objects deleted before the deletion lag: %v %v", l, err)
	}

	// Killed with the deletions pending; after the restart they happen
	// once the (now shorter) lag has passed.
	p.kill(t)
	client.Close()
	p = startProc(t, dir, p.brokerPort, p.httpPort, args...)
	expectHTTP(t, http.MethodPost, p.webURL+"/admin/v2/namespaces/"+ns+"/offloadDeletionLagMs", "1000", http.StatusNoContent)
	expectHTTP(t, http.MethodGet, stats, "", http.StatusOK) // loads the topic
	adminEventually(t, "trimmed objects deleted from the store", func() bool {
		l, err := objects.List(context.Background(), "mb/")
		return err == nil && len(l) == 0
	})
	var st struct{ StorageSize, OffloadedStorageSize int64 }
	if err := json.Unmarshal([]byte(expectHTTP(t, http.MethodGet, stats, "", http.StatusOK)), &st); err != nil || st.OffloadedStorageSize != 0 {
		t.Fatalf("stats after the restart: %+v %v", st, err)
	}
}

func newProcAdmin(t *testing.T, p *proc) pulsaradmin.Client {
	t.Helper()
	admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: p.webURL})
	if err != nil {
		t.Fatal(err)
	}
	return admin
}
