// Command mbbench is the load generator and bookkeeper of the benchmark suite
// (bench/run.sh). Its subcommands:
//
//	produce  async batched sends with the official Pulsar Go client to N
//	         topics, optionally with tailing consumers (end-to-end latency)
//	catchup  write a backlog to one topic, or consume it back (msg/s)
//	idle     open many raw Pulsar connections (TCP + CONNECT) and hold them
//	jetstream  `produce` for NATS JetStream on the official NATS Go client:
//	         async publishes with bounded pending acks to N streams, fixed
//	         rate optional, tailing consumers (end-to-end latency)
//	nats     run `nats bench js` against a JetStream server and parse it
//	         (the catch-up backlog)
//	fsync    measure the disk's append + fdatasync latency
//	syncread fdatasync latency while old data is read from the same disk in
//	         several ways (the journal's background reads)
//	evict    drop a directory's files from the OS page cache
//	table    print the results file as one Markdown table
//	get      print one field of one result (used for the half-rate run)
//
// Each measuring subcommand appends one JSON line to --results with the
// broker's CPU and memory read from /proc/<pid> when --broker-pid is given.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "produce":
		runProduce(args)
	case "catchup":
		runCatchup(args)
	case "idle":
		runIdle(args)
	case "jetstream":
		runJetStream(args)
	case "nats":
		runNATS(args)
	case "fsync":
		runFsync(args)
	case "syncread":
		runSyncRead(args)
	case "evict":
		runEvict(args)
	case "table":
		runTable(args)
	case "get":
		runGet(args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mbbench produce|catchup|idle|jetstream|nats|fsync|syncread|evict|table|get [flags]")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mbbench:", err)
	os.Exit(1)
}
