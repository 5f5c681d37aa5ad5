package pebbledb

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The record format of Pebble's WAL and MANIFEST (pebble/record/record.go):
// 32 KiB blocks of chunks that never straddle a block; a chunk header is
// checksum(4) length(2) encoding(1), plus the log number(4) in the
// recyclable encodings and a synced offset(8) in the WAL-sync ones. The
// checksum is a masked CRC-32C over encoding..payload end.
const (
	blockSize            = 32 << 10
	legacyHeaderSize     = 7
	recyclableHeaderSize = legacyHeaderSize + 4
	walSyncHeaderSize    = recyclableHeaderSize + 8

	encFull, encFirst, encMiddle, encLast = 1, 2, 3, 4
	encRecyclableFull                     = 5
	encWALSyncLast                        = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func maskedCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b)
	return (c>>15 | c<<17) + 0xa282ead8
}

// logScan is what a pass over one record file found.
type logScan struct {
	// end is where the readable records end (the start of the first bad
	// chunk or of an unfinished record).
	end int64
	// trailer: the records end at the EOF trailer a WAL gets when closed.
	trailer bool
	// bad describes the first bad chunk ("" when the records end cleanly at
	// the end of the file or at the trailer).
	bad string
	// validAfter is the offset of a valid chunk of this file after end, or -1.
	validAfter int64
}

// chunkAt parses the chunk header at off. log is the WAL's number (0 for the
// MANIFEST, whose chunks carry none). It returns the encoding's position
// (1 full, 2 first, 3 middle, 4 last), the chunk's total size, whether it is
// the EOF trailer, and a reason when it is not a valid chunk.
func chunkAt(data []byte, off int, log uint32, wal bool) (pos int, size int, trailer bool, bad string) {
	blockEnd := (off/blockSize + 1) * blockSize
	if blockEnd > len(data) {
		blockEnd = len(data)
	}
	if off+legacyHeaderSize > blockEnd {
		return 0, 0, false, "short header"
	}
	sum := binary.LittleEndian.Uint32(data[off:])
	n := int(binary.LittleEndian.Uint16(data[off+4:]))
	enc := int(data[off+6])
	hs := legacyHeaderSize
	switch {
	case enc >= encFull && enc <= encLast:
		if wal {
			return 0, 0, false, fmt.Sprintf("chunk encoding %d not written to WALs", enc)
		}
	case enc >= encRecyclableFull && enc <= encWALSyncLast:
		if !wal {
			return 0, 0, false, fmt.Sprintf("chunk encoding %d not written to a MANIFEST", enc)
		}
		hs = recyclableHeaderSize
		if enc > encRecyclableFull+3 {
			hs = walSyncHeaderSize
		}
		if off+hs > blockEnd {
			return 0, 0, false, "short header"
		}
		num := binary.LittleEndian.Uint32(data[off+7:])
		if enc == encRecyclableFull && sum == 0 && n == 0 && num == log+1 {
			return 0, recyclableHeaderSize, true, ""
		}
		if num != log {
			return 0, 0, false, fmt.Sprintf("chunk of log %d", num)
		}
	case enc == 0 && sum == 0 && n == 0:
		return 0, 0, false, "zeroed chunk"
	default:
		return 0, 0, false, fmt.Sprintf("invalid chunk encoding %d", enc)
	}
	if off+hs+n > blockEnd {
		return 0, 0, false, "chunk extends past its block"
	}
	if maskedCRC(data[off+6:off+hs+n]) != sum {
		return 0, 0, false, "checksum mismatch"
	}
	return (enc-1)%4 + 1, hs + n, false, ""
}

// scanLog reads the records of a WAL (wal, with its number) or MANIFEST.
func scanLog(data []byte, log uint32, wal bool) logScan {
	s := logScan{validAfter: -1}
	off, recStart := 0, 0
	inRecord := false
	for {
		if off >= len(data) {
			if inRecord {
				s.end, s.bad = int64(recStart), "record cut short by the end of the file"
				break
			}
			s.end = int64(off)
			return s
		}
		rest := blockSize - off%blockSize
		if rest < legacyHeaderSize || (wal && rest < walSyncHeaderSize && allZero(data[off:min(len(data), off+rest)])) {
			off += rest // the writer pads a block's tail too short for a header
			continue
		}
		pos, size, trailer, bad := chunkAt(data, off, log, wal)
		if trailer {
			if inRecord {
				s.end, s.bad = int64(recStart), "EOF trailer inside a record"
				break
			}
			s.end, s.trailer = int64(off), true
			return s
		}
		if bad == "" && (pos == encFull || pos == encFirst) == inRecord {
			bad = "chunk out of sequence"
		}
		if bad != "" {
			if !inRecord {
				recStart = off
			}
			if bad == "zeroed chunk" && allZero(data[off:]) {
				bad = "" // preallocated space after the last record
			}
			s.end, s.bad = int64(recStart), bad
			if bad == "" && inRecord {
				s.bad = "record cut short"
			}
			if s.bad == "" {
				return s
			}
			break
		}
		if pos == encFull || pos == encFirst {
			recStart = off
		}
		inRecord = pos == encFirst || pos == encMiddle
		off += size
	}
	// Is there valid data of this file after the bad chunk? Any offset can
	// hold a chunk header when a length field was damaged.
	for q := int(s.end) + 1; q+legacyHeaderSize <= len(data); q++ {
		if _, _, trailer, bad := chunkAt(data, q, log, wal); bad == "" || trailer {
			s.validAfter = int64(q)
			break
		}
	}
	return s
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func readAll(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// newestWAL returns the name and number of the newest WAL in names.
func newestWAL(names []string) (string, uint64) {
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			if _, err := strconv.ParseUint(strings.TrimSuffix(n, ".log"), 10, 64); err == nil {
				logs = append(logs, n)
			}
		}
	}
	if len(logs) == 0 {
		return "", 0
	}
	sort.Slice(logs, func(i, j int) bool { return walNum(logs[i]) < walNum(logs[j]) })
	last := logs[len(logs)-1]
	return last, walNum(last)
}

func walNum(name string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64)
	return n
}

// problem is damage found by check, in one file.
type problem struct {
	file string
	err  error
}

// check reads the current MANIFEST and the newest WAL of the store in dir
// before Pebble opens it. Older WALs need no check here: Pebble replays them
// strictly. closed is the marker of a clean close, nil after a crash.
func check(fs vfs.FS, dir string, closed *closeMarker) *problem {
	names, err := fs.List(dir)
	if err != nil {
		return nil // a new store; Pebble reports other errors itself
	}
	desc, err := pebble.Peek(dir, fs)
	if err != nil {
		return &problem{"", fmt.Errorf("reading the current MANIFEST's name: %w", err)}
	}
	if !desc.Exists {
		if closed != nil {
			return &problem{closed.Manifest, fmt.Errorf("no MANIFEST, though the store was closed cleanly with %s", closed.Manifest)}
		}
		return nil
	}
	if desc.OptionsFilename != "" {
		name := fs.PathBase(desc.OptionsFilename)
		data, err := readAll(fs, fs.PathJoin(dir, name))
		if err != nil {
			return &problem{name, err}
		}
		if err := parseOptions(string(data)); err != nil {
			return &problem{name, err}
		}
	}
	manifest := fs.PathBase(desc.ManifestFilename)
	if p := checkFile(fs, dir, manifest, 0, false, closed); p != nil {
		return p
	}
	wal, num := newestWAL(names)
	if closed != nil && closed.WAL != "" && wal != closed.WAL {
		return &problem{closed.WAL, fmt.Errorf("the newest WAL is %q, not %s as at the last clean close", wal, closed.WAL)}
	}
	if wal == "" {
		return nil
	}
	return checkFile(fs, dir, wal, uint32(num), true, closed)
}

func checkFile(fs vfs.FS, dir, name string, log uint32, wal bool, closed *closeMarker) *problem {
	data, err := readAll(fs, fs.PathJoin(dir, name))
	if err != nil {
		return &problem{name, err}
	}
	s := scanLog(data, log, wal)
	if s.validAfter >= 0 {
		return &problem{name, fmt.Errorf("%s at offset %d, followed by valid records at offset %d: damage, not a torn write", s.bad, s.end, s.validAfter)}
	}
	if closed == nil {
		return nil // after a crash a bad tail is the write in flight; Pebble drops it
	}
	if s.bad != "" {
		return &problem{name, fmt.Errorf("%s at offset %d, though the store was closed cleanly", s.bad, s.end)}
	}
	if wal && !s.trailer {
		return &problem{name, fmt.Errorf("ends at offset %d without the end-of-log trailer written at close: truncated", s.end)}
	}
	want := closed.ManifestSize
	if wal {
		want = closed.WALSize
	} else if name != closed.Manifest {
		return &problem{name, fmt.Errorf("current MANIFEST is %s, not %s as at the last clean close", name, closed.Manifest)}
	}
	if int64(len(data)) != want {
		return &problem{name, fmt.Errorf("is %d bytes, %d at the last clean close", len(data), want)}
	}
	return nil
}

// parseOptions parses an OPTIONS file as Pebble will at open.
func parseOptions(text string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	o := &pebble.Options{}
	o.EnsureDefaults()
	return o.Parse(text, nil)
}
