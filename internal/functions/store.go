package functions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/messagebus/messagebus/internal/meta"
)

// Metadata layout (all under /functions/):
//
//	config/<tenant>/<ns>/<name>          Record (JSON)
//	code/<tenant>/<ns>/<name>/<nnnnnn>   the module in chunks of codeChunk bytes
//	state/<tenant>/<ns>/<name>/<key>     state values (key path-escaped)
//
// Code is chunked so that modules of a few MiB (a Go module is 2-3 MiB)
// fit etcd's request limit; the record names the chunk count and the
// SHA-256 of the whole, checked on load. Chunks are written before the
// record that names them, under a prefix holding the record's version, so
// a crash between the two leaves the old code and record intact.
const (
	prefixConfig = "/functions/config/"
	prefixCode   = "/functions/code/"
	prefixState  = "/functions/state/"
	codeChunk    = 512 << 10
	// MaxModuleSize bounds an uploaded module.
	MaxModuleSize = 64 << 20
)

// Record is what the metadata store holds per function.
type Record struct {
	Config Config `json:"functionConfig"`
	// Code names the stored module.
	Code CodeRef `json:"code"`
	// Stopped is set by stop and cleared by start.
	Stopped bool `json:"stopped,omitempty"`
	// Version grows with every update; it names the code's chunk prefix.
	Version    int64 `json:"version"`
	CreateTime int64 `json:"createTime"`
	UpdateTime int64 `json:"updateTime"`
}

// CodeRef locates a module in the metadata store.
type CodeRef struct {
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	Chunks int    `json:"chunks"`
	// Generation is the Record.Version the chunks were written under.
	Generation int64 `json:"generation"`
}

// ErrNotFound is returned for a function that does not exist.
var ErrNotFound = errors.New("function does not exist")

// ErrExists is returned by create for a function that exists.
var ErrExists = errors.New("function already exists")

type store struct{ meta meta.Store }

func (s store) get(ctx context.Context, fqfn string) (Record, int64, error) {
	kv, err := s.meta.Get(ctx, prefixConfig+fqfn)
	if errors.Is(err, meta.ErrNotFound) {
		return Record{}, 0, ErrNotFound
	}
	if err != nil {
		return Record{}, 0, err
	}
	var r Record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return Record{}, 0, fmt.Errorf("function record %s: %w", fqfn, err)
	}
	return r, kv.Version, nil
}

func (s store) list(ctx context.Context, prefix string) ([]Record, error) {
	kvs, err := s.meta.List(ctx, prefixConfig+prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("function record %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// putCode writes a module's chunks for generation gen.
func (s store) putCode(ctx context.Context, fqfn string, gen int64, code []byte) (CodeRef, error) {
	sum := sha256.Sum256(code)
	ref := CodeRef{SHA256: hex.EncodeToString(sum[:]), Size: len(code), Generation: gen}
	for off := 0; off < len(code) || off == 0; off += codeChunk {
		end := min(off+codeChunk, len(code))
		if _, err := s.meta.Put(ctx, chunkKey(fqfn, gen, ref.Chunks), code[off:end], meta.AnyVersion); err != nil {
			return CodeRef{}, fmt.Errorf("store function code: %w", err)
		}
		ref.Chunks++
		if end == len(code) {
			break
		}
	}
	return ref, nil
}

func chunkKey(fqfn string, gen int64, i int) string {
	return fmt.Sprintf("%s%s/%d/%06d", prefixCode, fqfn, gen, i)
}

func (s store) code(ctx context.Context, fqfn string, ref CodeRef) ([]byte, error) {
	code := make([]byte, 0, ref.Size)
	for i := range ref.Chunks {
		kv, err := s.meta.Get(ctx, chunkKey(fqfn, ref.Generation, i))
		if err != nil {
			return nil, fmt.Errorf("read function code chunk %d: %w", i, err)
		}
		code = append(code, kv.Value...)
	}
	sum := sha256.Sum256(code)
	if hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("function code of %s is damaged: checksum mismatch", fqfn)
	}
	return code, nil
}

// deleteCode removes the chunks of every generation but keep (-1: all).
func (s store) deleteCode(ctx context.Context, fqfn string, keep int64) error {
	kvs, err := s.meta.List(ctx, prefixCode+fqfn+"/")
	if err != nil {
		return err
	}
	keepPrefix := fmt.Sprintf("%s%s/%d/", prefixCode, fqfn, keep)
	for _, kv := range kvs {
		if keep >= 0 && strings.HasPrefix(kv.Key, keepPrefix) {
			continue
		}
		if err := s.meta.Delete(ctx, kv.Key, meta.AnyVersion); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s store) put(ctx context.Context, r Record, expected int64) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.meta.Put(ctx, prefixConfig+r.Config.FQFN(), b, expected)
	if errors.Is(err, meta.ErrBadVersion) && expected == meta.NotExists {
		return ErrExists
	}
	return err
}

func (s store) delete(ctx context.Context, fqfn string) error {
	err := s.meta.Delete(ctx, prefixConfig+fqfn, meta.AnyVersion)
	if errors.Is(err, meta.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func nowMillis() int64 { return time.Now().UnixMilli() }
