package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
	"google.golang.org/protobuf/proto"
)

// runIdle opens --conns raw Pulsar connections (TCP, CONNECT, wait for
// CONNECTED), holds them for --hold answering the broker's PINGs, and
// reports connection errors, connections dropped while held, and the
// broker's RSS before, with all open, and after closing them. It uses raw
// sockets rather than 5,000 Pulsar clients so the load generator's own
// memory stays small (one goroutine and a 512 B buffer per connection).
func runIdle(args []string) {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	var cf commonFlags
	cf.register(fs)
	addr := fs.String("addr", "127.0.0.1:6650", "broker address (host:port)")
	n := fs.Int("conns", 5000, "connections")
	hold := fs.Duration("hold", 10*time.Second, "how long to hold them open")
	fs.Parse(args)

	connect := wire.AppendCommand(nil, &pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(),
		Connect: &pb.CommandConnect{ClientVersion: proto.String("mbbench-idle"), ProtocolVersion: proto.Int32(20)}})
	pong := wire.AppendCommand(nil, &pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})

	before, errA := sampleProc(cf.pid)
	var connErrs, dropped atomic.Int64
	var holding atomic.Bool
	holding.Store(true)
	conns := make([]net.Conn, *n)
	var readers sync.WaitGroup
	start := time.Now()
	parallel(*n, 32, func(i int) {
		c, err := net.DialTimeout("tcp", *addr, 10*time.Second)
		if err != nil {
			connErrs.Add(1)
			return
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		if _, err := c.Write(connect); err != nil {
			connErrs.Add(1)
			c.Close()
			return
		}
		typ, buf, err := readFrameType(c, buf)
		if err != nil || typ != pb.BaseCommand_CONNECTED {
			connErrs.Add(1)
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
		conns[i] = c
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				typ, b, err := readFrameType(c, buf)
				buf = b
				if err != nil {
					if holding.Load() {
						dropped.Add(1)
					}
					return
				}
				if typ == pb.BaseCommand_PING {
					c.Write(pong)
				}
			}
		}()
	})
	openTime := time.Since(start)
	open, errOpen := sampleProc(cf.pid)
	time.Sleep(*hold)
	held, errHeld := sampleProc(cf.pid)
	holding.Store(false)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	readers.Wait()
	time.Sleep(2 * time.Second) // let the broker notice and release
	after, _ := sampleProc(cf.pid)

	r := emptyResult(cf.scenario, cf.system)
	r.MsgPerS, r.MBPerS = -1, -1
	r.Errors = connErrs.Load() + dropped.Load()
	ok := int64(*n) - connErrs.Load()
	r.Notes = fmt.Sprintf("%d/%d connected in %.1f s, %d dropped while held %v", ok, *n, openTime.Seconds(), dropped.Load(), *hold)
	if errA == nil && errOpen == nil && errHeld == nil {
		r.CPU = cpuPct(open, held) // while idle
		r.PeakRSS = float64(held.hwmKiB) / 1024
		perConn := float64(open.rssKiB-before.rssKiB) / float64(max(ok, 1))
		r.Notes += fmt.Sprintf("; RSS %.0f → %.0f MiB open (%.1f KiB/conn) → %.0f MiB after close",
			float64(before.rssKiB)/1024, float64(held.rssKiB)/1024, perConn, float64(after.rssKiB)/1024)
	}
	cf.save(r)
}

// readFrameType reads one frame into buf (grown when needed) and returns its
// command type.
func readFrameType(r io.Reader, buf []byte) (pb.BaseCommand_Type, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, buf, err
	}
	total := int(binary.BigEndian.Uint32(hdr[:]))
	if total > 16<<20 {
		return 0, buf, fmt.Errorf("frame of %d bytes", total)
	}
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	if _, err := io.ReadFull(r, buf[:total]); err != nil {
		return 0, buf, err
	}
	f, err := wire.DecodeFrame(buf[:total])
	if err != nil {
		return 0, buf, err
	}
	return f.Type, buf, nil
}
