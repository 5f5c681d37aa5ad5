package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runSyncRead times small appends, each followed by fdatasync (the
// journal's group commit), once a millisecond, while another goroutine
// reads a large file evicted from the page cache sequentially, the way an
// offload or a compaction reads old journal segments: each read followed
// by a pause as long as it took (pace's duty cycle). Modes:
//
//	none          no reads: the reference
//	buffered-1m   1 MiB reads, the kernel's readahead on (the journal's
//	              background reads before session 13)
//	random-1m     1 MiB reads on a handle told POSIX_FADV_RANDOM
//	random-256k   256 KiB reads, POSIX_FADV_RANDOM (what they do now)
//	direct-256k   256 KiB O_DIRECT reads
func runSyncRead(args []string) {
	fs := flag.NewFlagSet("syncread", flag.ExitOnError)
	dur := fs.Duration("duration", 8*time.Second, "per mode and round")
	rounds := fs.Int("rounds", 2, "rounds over the modes")
	modes := fs.String("modes", "none,buffered-1m,random-1m,random-256k,direct-256k", "comma-separated")
	size := fs.Int64("file-size", 4<<30, "size of the file read (written once, kept in DIR)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fatal(fmt.Errorf("usage: mbbench syncread [flags] DIR"))
	}
	dir := fs.Arg(0)
	big := filepath.Join(dir, "syncread-data")
	if st, err := os.Stat(big); err != nil || st.Size() < *size {
		writeZeros(big, *size)
	}
	wal, err := os.CreateTemp(dir, "syncread-wal")
	if err != nil {
		fatal(err)
	}
	defer os.Remove(wal.Name())
	defer wal.Close()
	const walSize = 64 << 20
	if _, err := wal.WriteAt(make([]byte, walSize), 0); err != nil { // preallocated, as a journal segment
		fatal(err)
	}
	if err := wal.Sync(); err != nil {
		fatal(err)
	}
	var off int64 // where the reads go on, so that no mode reads cached data
	for range *rounds {
		for _, m := range strings.Split(*modes, ",") {
			dropCache(big)
			r, mbps := syncReadMode(wal, walSize, big, *size, m, *dur, &off)
			fmt.Printf("%-12s fdatasync of 1700 B (%d): p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f ms; reads %.0f MB/s\n",
				m, r.n, r.q(0.5), r.q(0.9), r.q(0.99), r.q(0.999), r.q(1), mbps)
		}
	}
}

func writeZeros(name string, size int64) {
	f, err := os.Create(name)
	if err != nil {
		fatal(err)
	}
	buf := make([]byte, 4<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		fatal(err)
	}
	f.Close()
}

func dropCache(name string) {
	f, err := os.Open(name)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		fatal(err)
	}
}

func syncReadMode(wal *os.File, walSize int64, big string, size int64, mode string, dur time.Duration, off *int64) (*recorder, float64) {
	var stop atomic.Bool
	var read atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		if mode == "none" {
			return
		}
		flags, advise, step := os.O_RDONLY, -1, 1<<20
		switch mode {
		case "buffered-1m":
		case "random-1m":
			advise = unix.FADV_RANDOM
		case "random-256k":
			advise, step = unix.FADV_RANDOM, 256<<10
		case "direct-256k":
			flags, step = flags|unix.O_DIRECT, 256<<10
		default:
			fatal(fmt.Errorf("syncread: unknown mode %q", mode))
		}
		f, err := os.OpenFile(big, flags, 0)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		if advise >= 0 {
			if err := unix.Fadvise(int(f.Fd()), 0, 0, advise); err != nil {
				fatal(err)
			}
		}
		raw := make([]byte, step+4096) // O_DIRECT wants aligned memory
		a := int((4096 - uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096)
		buf := raw[a : a+step]
		for !stop.Load() {
			if *off+int64(step) > size {
				*off = 0
			}
			start := time.Now()
			n, err := f.ReadAt(buf, *off)
			if err != nil {
				fatal(err)
			}
			*off += int64(n)
			read.Add(int64(n))
			time.Sleep(time.Since(start))
		}
	}()
	r := newRecorder()
	rec := make([]byte, 1700) // a group commit's mean size at 10,000 msg/s of 128 B
	var at int64
	tick := time.NewTicker(time.Millisecond)
	for end := time.Now().Add(dur); time.Now().Before(end); {
		<-tick.C
		start := time.Now()
		if _, err := wal.WriteAt(rec, at); err != nil {
			fatal(err)
		}
		if err := unix.Fdatasync(int(wal.Fd())); err != nil {
			fatal(err)
		}
		r.add(time.Since(start))
		at = (at + int64(len(rec))) % (walSize - int64(len(rec)))
	}
	tick.Stop()
	stop.Store(true)
	<-done
	return r, float64(read.Load()) / 1e6 / dur.Seconds()
}
