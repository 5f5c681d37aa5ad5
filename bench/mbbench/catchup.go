package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// runCatchup writes a backlog (--write N) to one topic behind a durable
// subscription, or consumes it back (--read N) through that subscription and
// reports the consume rate. bench/run.sh restarts the broker and evicts the
// data dir from the page cache between the two, so reads come from disk.
func runCatchup(args []string) {
	fs := flag.NewFlagSet("catchup", flag.ExitOnError)
	var cf commonFlags
	cf.register(fs)
	url := fs.String("url", "pulsar://127.0.0.1:6650", "broker service URL")
	topic := fs.String("topic", "persistent://public/default/backlog", "topic")
	size := fs.Int("size", 128, "message size in bytes (for --write and MB/s)")
	write := fs.Int("write", 0, "write this many messages")
	read := fs.Int("read", 0, "consume this many messages")
	notes := fs.String("notes", "", "notes for the results table")
	fs.Parse(args)

	client := newClient(*url)
	defer client.Close()
	sub := pulsar.ConsumerOptions{Topic: *topic, SubscriptionName: "catchup", ReceiverQueueSize: 10000,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest}
	switch {
	case *write > 0:
		c, err := client.Subscribe(sub) // the durable subscription keeps the backlog
		if err != nil {
			fatal(err)
		}
		c.Close()
		p, err := client.CreateProducer(producerOptions(*topic, time.Millisecond, 10000))
		if err != nil {
			fatal(err)
		}
		payload := make([]byte, *size)
		var errs atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < *write; i++ {
			wg.Add(1)
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						errs.Add(1)
					}
					wg.Done()
				})
		}
		wg.Wait()
		el := time.Since(start).Seconds()
		p.Close()
		if errs.Load() > 0 {
			fatal(fmt.Errorf("backlog write: %d send errors", errs.Load()))
		}
		fmt.Printf("wrote %d messages of %d B in %.1f s (%.0f msg/s)\n", *write, *size, el, float64(*write)/el)
	case *read > 0:
		before, errA := sampleProc(cf.pid)
		start := time.Now()
		c, err := client.Subscribe(sub)
		if err != nil {
			fatal(err)
		}
		var first time.Time
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		n := 0
		for n < *read {
			m, err := c.Receive(ctx)
			if err != nil {
				fatal(fmt.Errorf("after %d of %d messages: %w", n, *read, err))
			}
			if n == 0 {
				first = time.Now()
			}
			n++
			c.AckID(m.ID())
		}
		el := time.Since(start).Seconds()
		after, errB := sampleProc(cf.pid)
		c.Close()
		r := emptyResult(cf.scenario, cf.system)
		r.MsgPerS = float64(n) / el
		r.MBPerS = r.MsgPerS * float64(*size) / 1e6
		r.Notes = fmt.Sprintf("%s; first message after %d ms", *notes, first.Sub(start).Milliseconds())
		brokerStats(&r, before, after, errA, errB)
		cf.save(r)
	default:
		fatal(fmt.Errorf("catchup: give --write N or --read N"))
	}
}

// runEvict drops every file under a directory from the page cache
// (posix_fadvise DONTNEED after fsync), so the next reads go to the disk.
// Unlike writing /proc/sys/vm/drop_caches it needs no privileges.
func runEvict(args []string) {
	if len(args) != 1 {
		fatal(fmt.Errorf("usage: mbbench evict DIR"))
	}
	var files int
	var bytes int64
	err := filepath.WalkDir(args[0], func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return err
		}
		const fadvDontNeed = 4
		if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
			return fmt.Errorf("fadvise %s: %w", path, e)
		}
		if st, err := d.Info(); err == nil {
			bytes += st.Size()
		}
		files++
		return nil
	})
	if err != nil {
		fatal(err)
	}
	fmt.Printf("evicted %d files (%.0f MiB) from the page cache\n", files, float64(bytes)/(1<<20))
}

// runFsync times appends of 4 KiB each followed by fdatasync, the operation
// the journal's group commit waits for without preallocation, then the same
// writes over a file of zeros written and synced before (what it waits for in
// a preallocated segment). The first line is the suite's reference.
func runFsync(args []string) {
	fs := flag.NewFlagSet("fsync", flag.ExitOnError)
	n := fs.Int("n", 200, "number of writes of each kind")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fatal(fmt.Errorf("usage: mbbench fsync [-n N] DIR"))
	}
	for _, prealloc := range []bool{false, true} {
		r := fsyncProbe(fs.Arg(0), *n, prealloc)
		kind := "4 KiB append"
		if prealloc {
			kind = "4 KiB over preallocated zeros"
		}
		fmt.Printf("disk fdatasync (%s, %d samples): p50=%.3f ms p99=%.3f ms\n", kind, *n, r.q(0.5), r.q(0.99))
	}
}

func fsyncProbe(dir string, n int, prealloc bool) *recorder {
	f, err := os.CreateTemp(dir, "fsync-probe")
	if err != nil {
		fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	if prealloc {
		for i := 0; i < n; i++ {
			if _, err := f.Write(buf); err != nil {
				fatal(err)
			}
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			fatal(err)
		}
	}
	r := newRecorder()
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*int64(len(buf))); err != nil {
			fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			fatal(err)
		}
		r.add(time.Since(start))
	}
	return r
}
