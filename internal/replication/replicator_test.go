package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/geo"
	"github.com/messagebus/messagebus/internal/ledger"
	"github.com/messagebus/messagebus/internal/ledger/memory"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

// fakeRemote is a remote broker that stores replicated entries once per
// source position and refuses the sends after a refused one, as the real
// one does (broker/replicated.go), and misbehaves on chosen sends.
type fakeRemote struct {
	ln net.Listener
	mu sync.Mutex
	// fail maps the n-th SEND received (from 0, over all connections) to
	// a misbehaviour: "error" (SEND_ERROR, not stored), "drop" (connection
	// closed, not stored), "lost" (stored, connection closed before the
	// receipt), "silent" (stored, no receipt ever).
	fail    map[int]string
	sends   int
	stored  []string
	highest int64
	conns   int
	// lookup answers LOOKUP (nil: Connect with proxy_through_service_url,
	// as a standalone broker); notOwner refuses producers as a broker that
	// does not serve the topic.
	lookup    func(authoritative bool) *pb.CommandLookupTopicResponse
	notOwner  bool
	producers int
	lookups   []bool // the authoritative flag of each LOOKUP
}

func newFakeRemote(t *testing.T, fail map[int]string) *fakeRemote {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRemote{ln: ln, fail: fail, highest: -1}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(t, nc)
		}
	}()
	return f
}

func (f *fakeRemote) serve(t *testing.T, nc net.Conn) {
	defer nc.Close()
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
	r := wire.NewReader(nc, 0)
	write := func(cmd *pb.BaseCommand) { nc.Write(wire.AppendCommand(nil, cmd)) }
	broken := false // after a refused send, later ones are refused too (the broker's contract)
	for {
		fr, err := r.ReadFrame()
		if err != nil {
			return
		}
		cmd, err := fr.Command()
		if err != nil {
			t.Errorf("fake remote: %v", err)
			return
		}
		switch cmd.GetType() {
		case pb.BaseCommand_CONNECT:
			write(&pb.BaseCommand{Type: pb.BaseCommand_CONNECTED.Enum(), Connected: &pb.CommandConnected{
				ServerVersion: proto.String("fake"), ProtocolVersion: proto.Int32(20), MaxMessageSize: proto.Int32(5 << 20)}})
		case pb.BaseCommand_LOOKUP:
			f.mu.Lock()
			f.lookups = append(f.lookups, cmd.GetLookupTopic().GetAuthoritative())
			f.mu.Unlock()
			ans := &pb.CommandLookupTopicResponse{Response: pb.CommandLookupTopicResponse_Connect.Enum(), ProxyThroughServiceUrl: proto.Bool(true)}
			if f.lookup != nil {
				ans = f.lookup(cmd.GetLookupTopic().GetAuthoritative())
			}
			ans.RequestId = proto.Uint64(cmd.GetLookupTopic().GetRequestId())
			write(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: ans})
		case pb.BaseCommand_PRODUCER:
			f.mu.Lock()
			f.producers++
			f.mu.Unlock()
			if f.notOwner {
				write(&pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{RequestId: proto.Uint64(cmd.GetProducer().GetRequestId()),
					Error: pb.ServerError_ServiceNotReady.Enum(), Message: proto.String("not served by this instance")}})
				continue
			}
			write(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: &pb.CommandProducerSuccess{
				RequestId: proto.Uint64(cmd.GetProducer().GetRequestId()), ProducerName: proto.String(cmd.GetProducer().GetProducerName())}})
		case pb.BaseCommand_SEND:
			f.mu.Lock()
			action := f.fail[f.sends]
			f.sends++
			f.mu.Unlock()
			s := cmd.GetSend()
			if broken {
				action = "error"
			}
			switch action {
			case "error":
				broken = true
				write(&pb.BaseCommand{Type: pb.BaseCommand_SEND_ERROR.Enum(), SendError: &pb.CommandSendError{
					ProducerId: proto.Uint64(s.GetProducerId()), SequenceId: proto.Uint64(s.GetSequenceId()),
					Error: pb.ServerError_PersistenceError.Enum(), Message: proto.String("injected")}})
				continue
			case "drop":
				return
			}
			ledgerID, entryID := f.store(t, fr.HeadersAndPayload)
			switch action {
			case "lost":
				return
			case "silent":
				continue
			}
			write(&pb.BaseCommand{Type: pb.BaseCommand_SEND_RECEIPT.Enum(), SendReceipt: &pb.CommandSendReceipt{
				ProducerId: proto.Uint64(s.GetProducerId()), SequenceId: proto.Uint64(s.GetSequenceId()),
				MessageId: &pb.MessageIdData{LedgerId: proto.Uint64(uint64(ledgerID)), EntryId: proto.Uint64(uint64(entryID))}}})
		case pb.BaseCommand_PING:
			write(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
		}
	}
}

// store keeps an entry once per source position; a duplicate answers -1:-1.
func (f *fakeRemote) store(t *testing.T, hp []byte) (int64, int64) {
	if err := wire.VerifyChecksum(hp); err != nil {
		t.Errorf("fake remote: %v", err)
	}
	meta, _, err := wire.SplitPayload(hp)
	if err != nil {
		t.Fatal(err)
	}
	var md pb.MessageMetadata
	if err := proto.Unmarshal(meta, &md); err != nil {
		t.Fatal(err)
	}
	if md.GetReplicatedFrom() != "local" {
		t.Errorf("replicated_from %q", md.GetReplicatedFrom())
	}
	var pos string
	for _, kv := range md.GetProperties() {
		if kv.GetKey() == geo.SourcePositionProperty {
			pos = kv.GetValue()
		}
	}
	_, entry, err := geo.ParseSourcePosition(pos)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if entry <= f.highest {
		return -1, -1
	}
	f.highest = entry
	f.stored = append(f.stored, pos)
	return 1, int64(len(f.stored) - 1)
}

func (f *fakeRemote) storedPositions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stored)
}

// entry builds a stored entry: kind "" (replicated), "foreign" (arrived by
// replication), "elsewhere" (replicate_to another cluster).
func entry(i int, kind string) []byte {
	md := &pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(uint64(i)),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli())), PartitionKey: proto.String(fmt.Sprint("k", i%3)),
		Properties: []*pb.KeyValue{{Key: proto.String("i"), Value: proto.String(fmt.Sprint(i))}}}
	switch kind {
	case "foreign":
		md.ReplicatedFrom = proto.String("other")
	case "elsewhere":
		md.ReplicateTo = []string{"local", "third"}
	}
	payload := []byte(fmt.Sprint("payload-", i))
	if i%4 == 2 { // large enough to be written from the entry (zeroCopyMin)
		payload = append(payload, bytes.Repeat([]byte{'x'}, zeroCopyMin+100)...)
	}
	return wire.BuildPayload(md, payload)
}

// The replicator neither skips nor duplicates whatever the link does: sends
// refused, connections dropped before or after the remote stored an entry,
// receipts that never come. Its cursor never passes an entry the remote did
// not acknowledge.
func TestReplicatorSurvivesLinkFailures(t *testing.T) {
	remote := newFakeRemote(t, map[int]string{3: "error", 10: "drop", 20: "lost", 21: "error", 35: "silent", 50: "lost", 51: "lost"})
	l, err := memory.New().Open(context.Background(), "persistent://t/ns/x")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards want and saved
	var want []string
	appendEntry := func(i int) {
		kind := ""
		switch {
		case i%7 == 3:
			kind = "foreign"
		case i%11 == 5:
			kind = "elsewhere"
		}
		done := make(chan struct{})
		l.Append(entry(i, kind), func(id int64, err error) {
			if err != nil {
				t.Error(err)
			}
			if kind == "" {
				mu.Lock()
				want = append(want, fmt.Sprintf("%d:%d", l.ID(), id))
				mu.Unlock()
			}
			close(done)
		})
		<-done
	}
	for i := 0; i < 40; i++ {
		appendEntry(i)
	}
	saved := int64(-1)
	r := Start(Config{
		Topic: "persistent://t/ns/x", LocalCluster: "local", RemoteCluster: "remote", LedgerID: l.ID(), Source: l, Start: -1,
		Save: func(md int64) {
			mu.Lock()
			defer mu.Unlock()
			if md < saved {
				t.Errorf("cursor moved back from %d to %d", saved, md)
			}
			saved = md
			// Every entry to send up to md must be on the remote.
			stored := remote.storedPositions()
			for _, w := range want {
				var e int64
				fmt.Sscanf(w[len(fmt.Sprint(l.ID()))+1:], "%d", &e)
				if e <= md && !slices.Contains(stored, w) {
					t.Errorf("cursor at %d passed %s, which the remote does not have", md, w)
				}
			}
		},
		Endpoint:       func(context.Context) (Endpoint, error) { return Endpoint{Addr: remote.ln.Addr().String()}, nil },
		ReceiptTimeout: 300 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		MaxPending: 8, SaveInterval: time.Millisecond,
	})
	for i := 40; i < 80; i++ { // tailing: entries written while it runs
		appendEntry(i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for r.MarkDelete() < l.LastEntryID() {
		if time.Now().After(deadline) {
			t.Fatalf("replicator stuck at %d of %d: %+v", r.MarkDelete(), l.LastEntryID(), r.Stats(time.Now()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Stop()
	mu.Lock()
	defer mu.Unlock()
	if got := remote.storedPositions(); !slices.Equal(got, want) {
		t.Fatalf("remote stored\n %v\nwant\n %v", got, want)
	}
	st := r.Stats(time.Now())
	if st.ReplicationBacklog != 0 || st.LastError == "" || st.MsgOutCounter != int64(len(want)) {
		t.Fatalf("stats: %+v", st)
	}
	if saved != l.LastEntryID() {
		t.Fatalf("cursor saved at %d, want %d", saved, l.LastEntryID())
	}
}

// prepare keeps the entry's payload and metadata and adds replicated_from
// and the source position; entries that came by replication or are meant
// for other clusters are not sent.
func TestPrepare(t *testing.T) {
	r := &Replicator{cfg: Config{LocalCluster: "local", RemoteCluster: "remote", LedgerID: 7}}
	hp, msgs, ok, err := r.prepare(nil, ledger.Entry{ID: 42, Data: entry(1, "")}, nil, nil)
	if err != nil || !ok || msgs != 1 {
		t.Fatalf("prepare: %v %v %d", ok, err, msgs)
	}
	meta, payload, _ := wire.SplitPayload(hp)
	var md pb.MessageMetadata
	if err := proto.Unmarshal(meta, &md); err != nil {
		t.Fatal(err)
	}
	if string(payload) != "payload-1" || md.GetPartitionKey() != "k1" || md.GetReplicatedFrom() != "local" || len(md.Properties) != 2 ||
		md.Properties[1].GetValue() != "7:42" || md.GetSequenceId() != 1 {
		t.Fatalf("prepared: %v %q", &md, payload)
	}
	if err := wire.VerifyChecksum(hp); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"foreign", "elsewhere"} {
		if _, _, ok, err := r.prepare(nil, ledger.Entry{ID: 1, Data: entry(1, kind)}, nil, nil); ok || err != nil {
			t.Fatalf("%s entry sent: %v", kind, err)
		}
	}
	if _, _, ok, err := r.prepare(nil, ledger.Entry{ID: 1, Data: []byte{1, 2}}, nil, nil); ok || err == nil {
		t.Fatal("malformed entry prepared")
	}
}

// A receipt that never comes ends the link after ReceiptTimeout; the resend
// is answered as a duplicate (-1:-1), which moves the cursor.
func TestReplicatorReceiptTimeout(t *testing.T) {
	remote := newFakeRemote(t, map[int]string{0: "silent"})
	l, err := memory.New().Open(context.Background(), "persistent://t/ns/y")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	l.Append(entry(0, ""), func(int64, error) { close(done) })
	<-done
	r := Start(Config{
		Topic: "persistent://t/ns/y", LocalCluster: "local", RemoteCluster: "remote", LedgerID: l.ID(), Source: l, Start: -1,
		Save:           func(int64) {},
		Endpoint:       func(context.Context) (Endpoint, error) { return Endpoint{Addr: remote.ln.Addr().String()}, nil },
		ReceiptTimeout: 200 * time.Millisecond, MinBackoff: time.Millisecond,
	})
	defer r.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for r.MarkDelete() < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stuck: %+v", r.Stats(time.Now()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.Stats(time.Now()); !strings.Contains(st.LastError, "no receipt") {
		t.Fatalf("last error: %q", st.LastError)
	}
	if got := remote.storedPositions(); len(got) != 1 {
		t.Fatalf("stored %v", got)
	}
}

// A replicator waiting out a long backoff after a failed attempt retries as
// soon as the remote's registration changes (an operator fixed it), not
// after the backoff.
func TestReplicatorRetriesWhenRegistrationChanges(t *testing.T) {
	remote := newFakeRemote(t, nil)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	l, err := memory.New().Open(context.Background(), "persistent://t/ns/z")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	l.Append(entry(0, ""), func(int64, error) { close(done) })
	<-done
	var mu sync.Mutex
	ep := Endpoint{Addr: deadAddr, config: "dead"}
	failed := make(chan struct{}, 1)
	r := Start(Config{
		Topic: "persistent://t/ns/z", LocalCluster: "local", RemoteCluster: "remote", LedgerID: l.ID(), Source: l, Start: -1,
		Save: func(int64) {},
		Endpoint: func(context.Context) (Endpoint, error) {
			mu.Lock()
			defer mu.Unlock()
			return ep, nil
		},
		OnError: func(error) {
			select {
			case failed <- struct{}{}:
			default:
			}
		},
		MinBackoff: time.Hour, MaxBackoff: time.Hour,
	})
	defer r.Stop()
	<-failed
	mu.Lock()
	ep = Endpoint{Addr: remote.ln.Addr().String(), config: "fixed"}
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for r.MarkDelete() < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no retry after the registration changed: %+v", r.Stats(time.Now()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The frames of a read, with large payloads written from the entries
// (writev), are on the wire exactly the frames built in one piece.
func TestAppendFrameZeroCopy(t *testing.T) {
	r := &Replicator{cfg: Config{LocalCluster: "local", RemoteCluster: "remote", LedgerID: 7}}
	es := []ledger.Entry{{ID: 1, Data: entry(1, "")}, {ID: 2, Data: entry(2, "")}, {ID: 3, Data: entry(3, "")}, {ID: 6, Data: entry(6, "")}}
	cmd := &pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: new(uint64), NumMessages: new(int32)}}
	for _, zeroCopy := range []bool{false, true} {
		var frames []byte
		var tails []frameTail
		var want [][]byte
		for i, e := range es {
			p, ok, err := r.inspect(e, nil, nil)
			if !ok || err != nil {
				t.Fatalf("inspect: %v %v", ok, err)
			}
			*cmd.Send.SequenceId = uint64(i)
			var tail []byte
			var size int
			frames, tail, size = r.appendFrame(frames, cmd, p, e.ID, zeroCopy)
			if tail != nil {
				tails = append(tails, frameTail{end: len(frames), data: tail})
			}
			hp, _, _, _ := r.prepare(nil, e, nil, nil)
			if size != len(hp) {
				t.Fatalf("size %d, sent %d", size, len(hp))
			}
			want = append(want, hp)
		}
		if got := len(tails); (got > 0) != zeroCopy || (zeroCopy && got != 2) {
			t.Fatalf("zeroCopy %v: %d payloads written from their entries", zeroCopy, got)
		}
		var buf bytes.Buffer
		bufs := gather(nil, frames, tails)
		if _, err := bufs.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		rd := wire.NewReader(&buf, 0)
		for i, w := range want {
			f, err := rd.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.Command()
			if err != nil || c.GetSend().GetSequenceId() != uint64(i) {
				t.Fatalf("frame %d: %v %v", i, c, err)
			}
			if !bytes.Equal(f.HeadersAndPayload, w) {
				t.Fatalf("frame %d differs from the entry built in one piece", i)
			}
			if err := wire.VerifyChecksum(f.HeadersAndPayload); err != nil {
				t.Fatal(err)
			}
		}
		if buf.Len() != 0 {
			t.Fatalf("%d bytes left", buf.Len())
		}
	}
}

// On a remote cluster of several brokers the link follows the lookup: from
// any broker of a multi-host registration (a dead one first) through a
// Redirect (looked up again with authoritative set) to the owner, where the
// producer is created; no producer is created elsewhere.
func TestReplicatorFollowsLookupRedirects(t *testing.T) {
	owner := newFakeRemote(t, nil)
	ownerURL := "pulsar://" + owner.ln.Addr().String()
	owner.lookup = func(authoritative bool) *pb.CommandLookupTopicResponse {
		if !authoritative {
			return &pb.CommandLookupTopicResponse{Response: pb.CommandLookupTopicResponse_Failed.Enum(), Error: pb.ServerError_ServiceNotReady.Enum(), Message: proto.String("want authoritative")}
		}
		return &pb.CommandLookupTopicResponse{Response: pb.CommandLookupTopicResponse_Connect.Enum(), BrokerServiceUrl: proto.String(ownerURL), Authoritative: proto.Bool(true)}
	}
	front := newFakeRemote(t, nil)
	front.notOwner = true
	front.lookup = func(bool) *pb.CommandLookupTopicResponse {
		return &pb.CommandLookupTopicResponse{Response: pb.CommandLookupTopicResponse_Redirect.Enum(), BrokerServiceUrl: proto.String(ownerURL), Authoritative: proto.Bool(true)}
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	l, err := memory.New().Open(context.Background(), "persistent://t/ns/x")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		done := make(chan struct{})
		l.Append(entry(i, ""), func(int64, error) { close(done) })
		<-done
	}
	r := Start(Config{
		Topic: "persistent://t/ns/x", LocalCluster: "local", RemoteCluster: "remote", LedgerID: l.ID(), Source: l, Start: -1,
		Save: func(int64) {},
		Endpoint: func(context.Context) (Endpoint, error) {
			return Endpoint{Addr: deadAddr, Addrs: []string{deadAddr, front.ln.Addr().String()}}, nil
		},
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	defer r.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for r.MarkDelete() < l.LastEntryID() {
		if time.Now().After(deadline) {
			t.Fatalf("replicator stuck at %d of %d: %+v", r.MarkDelete(), l.LastEntryID(), r.Stats(time.Now()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(owner.storedPositions()); got != 20 {
		t.Fatalf("owner stored %d entries, want 20", got)
	}
	front.mu.Lock()
	defer front.mu.Unlock()
	owner.mu.Lock()
	defer owner.mu.Unlock()
	if front.producers != 0 || len(front.stored) != 0 {
		t.Fatalf("the broker that redirected got %d producers, %d entries", front.producers, len(front.stored))
	}
	if !slices.Equal(owner.lookups, []bool{true}) || owner.producers != 1 {
		t.Fatalf("owner: lookups %v (authoritative flags), producers %d", owner.lookups, owner.producers)
	}
	if st := r.Stats(time.Now()); st.OutboundConnection != owner.ln.Addr().String() {
		t.Fatalf("outboundConnection %q, want the owner %s", st.OutboundConnection, owner.ln.Addr())
	}
}

// A frame's checksum derived from the stored one (large payloads) is the
// one computed over the bytes, whatever precedes the checksum block: broker
// entry metadata, or no checksum block at all (computed then).
func TestAppendReplicatedChecksum(t *testing.T) {
	r := &Replicator{cfg: Config{LocalCluster: "local", RemoteCluster: "remote", LedgerID: 7}}
	base := entry(2, "") // a payload of more than checksumReplaceMin
	bem, err := proto.Marshal(&pb.BrokerEntryMetadata{BrokerTimestamp: proto.Uint64(1), Index: proto.Uint64(9)})
	if err != nil {
		t.Fatal(err)
	}
	withBEM := binary.BigEndian.AppendUint16(nil, wire.MagicBrokerEntryMetadata)
	withBEM = binary.BigEndian.AppendUint32(withBEM, uint32(len(bem)))
	withBEM = append(append(withBEM, bem...), base...)
	for name, data := range map[string][]byte{"checksum": base, "broker entry metadata": withBEM, "no checksum": base[6:]} {
		p, ok, err := r.inspect(ledger.Entry{ID: 5, Data: data}, nil, nil)
		if !ok || err != nil {
			t.Fatalf("%s: inspect: %v %v", name, ok, err)
		}
		if len(p.payload) < checksumReplaceMin || p.hasCRC != (name != "no checksum") {
			t.Fatalf("%s: payload %d bytes, hasCRC %v", name, len(p.payload), p.hasCRC)
		}
		for _, inline := range []bool{true, false} {
			got := appendReplicated(nil, p, "local", 7, 5, inline)
			full := p
			full.hasCRC = false
			want := appendReplicated(nil, full, "local", 7, 5, inline)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, inline %v: derived checksum %x, computed %x", name, inline, got[2:6], want[2:6])
			}
			if inline {
				if err := wire.VerifyChecksum(got); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
	}
}
