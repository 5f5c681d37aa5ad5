package admin

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/proto"

	"github.com/messagebus/messagebus/internal/meta"
	"github.com/messagebus/messagebus/internal/wire"
	"github.com/messagebus/messagebus/internal/wire/pb"
)

func TestAdminDecompressEveryCodec(t *testing.T) {
	plain := bytes.Repeat([]byte("peek me, MessageBus! "), 200)
	compress := map[pb.CompressionType]func() []byte{
		pb.CompressionType_LZ4: func() []byte {
			out := make([]byte, lz4.CompressBlockBound(len(plain)))
			n, err := lz4.CompressBlock(plain, out, nil)
			if err != nil {
				t.Fatal(err)
			}
			return out[:n]
		},
		pb.CompressionType_ZLIB: func() []byte {
			var b bytes.Buffer
			zw := zlib.NewWriter(&b)
			zw.Write(plain)
			zw.Close()
			return b.Bytes()
		},
		pb.CompressionType_ZSTD: func() []byte {
			enc, _ := zstd.NewWriter(nil)
			defer enc.Close()
			return enc.EncodeAll(plain, nil)
		},
		pb.CompressionType_SNAPPY: func() []byte { return snappy.Encode(nil, plain) },
	}
	for codec, fn := range compress {
		md := &pb.MessageMetadata{Compression: codec.Enum(), UncompressedSize: proto.Uint32(uint32(len(plain)))}
		got, err := decompress(md, fn())
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: %d bytes, %v", codec, len(got), err)
		}
	}
	md := &pb.MessageMetadata{Compression: pb.CompressionType_LZ4.Enum(), UncompressedSize: proto.Uint32(wire.MaxUncompressedSize + 1)}
	if _, err := decompress(md, []byte{1, 2, 3}); err == nil {
		t.Error("an oversized uncompressed size was accepted")
	}
	md = &pb.MessageMetadata{Compression: pb.CompressionType_ZSTD.Enum(), UncompressedSize: proto.Uint32(10)}
	if _, err := decompress(md, []byte("not zstd")); err == nil {
		t.Error("garbage decoded as zstd")
	}
}

func TestAdminPolicyValidation(t *testing.T) {
	for _, c := range []struct {
		rp meta.RetentionPolicies
		ok bool
	}{{meta.RetentionPolicies{}, true}, {meta.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: 10}, true},
		{meta.RetentionPolicies{RetentionTimeInMinutes: 0, RetentionSizeInMB: 10}, false},
		{meta.RetentionPolicies{RetentionTimeInMinutes: -2, RetentionSizeInMB: -1}, false}} {
		if err := validateRetention(&c.rp); (err == nil) != c.ok {
			t.Errorf("retention %+v: %v", c.rp, err)
		}
	}
	two := 2
	for _, c := range []struct {
		o  meta.AutoTopicCreationOverride
		ok bool
	}{{meta.AutoTopicCreationOverride{}, true}, {meta.AutoTopicCreationOverride{AllowAutoTopicCreation: true, TopicType: "partitioned", DefaultNumPartitions: &two}, true},
		{meta.AutoTopicCreationOverride{AllowAutoTopicCreation: true, TopicType: "partitioned"}, false},
		{meta.AutoTopicCreationOverride{AllowAutoTopicCreation: true, TopicType: "non-partitioned", DefaultNumPartitions: &two}, false},
		{meta.AutoTopicCreationOverride{AllowAutoTopicCreation: true, TopicType: "sharded"}, false}} {
		if err := validateAutoTopicCreation(&c.o); (err == nil) != c.ok {
			t.Errorf("override %+v: %v", c.o, err)
		}
	}
	q := meta.BacklogQuota{Limit: 5 << 20, Policy: meta.BacklogPolicyProducerException}
	if err := validateBacklogQuota(&q); err != nil || q.LimitSize != 5<<20 {
		t.Errorf("deprecated limit not carried into limitSize: %+v %v", q, err)
	}
	if err := checkQuotaFitsRetention(q, &meta.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: 5}); err == nil {
		t.Error("a quota as large as the retention size was accepted")
	}
	if err := checkQuotaFitsRetention(q, &meta.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: 6}); err != nil {
		t.Errorf("a quota below the retention size was refused: %v", err)
	}
}

// TestErrorsHaveReasons checks the error shape of requests no handler takes
// and of endpoints that need a broker when there is none.
func TestAdminErrorsHaveReasons(t *testing.T) {
	md, err := meta.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	res := &meta.Resources{Store: md}
	if err := res.Bootstrap(context.Background(), "standalone", meta.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{ClusterName: "standalone"}, res))
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/admin/v2/nothing/here", 404},
		{"PATCH", "/admin/v2/tenants/public", 405},
		{"GET", "/admin/v2/persistent/public/default/t/stats", 503},
		{"GET", "/admin/v2/tenants/bad$name", 412},
		{"GET", "/admin/v2/namespaces/public/nope/retention", 404},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Reason string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.status || err != nil || body.Reason == "" {
			t.Errorf("%s %s: %d %q (%v), want %d with a reason", c.method, c.path, resp.StatusCode, body.Reason, err, c.status)
		}
	}
	// Unclean paths still get the mux's redirect.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(srv.URL + "/admin/v2//tenants")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/admin/v2/tenants" {
		t.Errorf("unclean path: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
