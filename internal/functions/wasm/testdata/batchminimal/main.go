// Command batchminimal is the smallest module taking batch calls (ABI
// version 2) without the SDK: for each input it reports one output with
// the input's payload (the batch benchmarks' floor).
package main

import (
	"encoding/binary"
	"unsafe"
)

//go:wasmimport mb scratch_read
func scratchRead(ptr unsafe.Pointer, n int32) int32

//go:wasmimport mb result
func result(ptr unsafe.Pointer, n int32) int32

var in, out = make([]byte, 1<<20), make([]byte, 0, 1<<16)

//go:wasmexport mb_abi_version
func version() int32 { return 2 }

//go:wasmexport mb_handle_batch
func handleBatch(count, n int32) int32 {
	scratchRead(unsafe.Pointer(&in[0]), n)
	b := in[:n]
	for range count {
		l := binary.LittleEndian.Uint32(b)
		rec := b[4 : 4+l]
		b = b[4+l:]
		pl := binary.LittleEndian.Uint32(rec[len(rec)-128-4:])
		out = out[:0]
		out = append(out, 0, 0)                        // status, ack
		out = binary.LittleEndian.AppendUint32(out, 0) // error
		out = binary.LittleEndian.AppendUint32(out, 1) // one output
		out = binary.LittleEndian.AppendUint32(out, 24+pl)
		out = binary.LittleEndian.AppendUint32(out, 0) // topic
		out = binary.LittleEndian.AppendUint32(out, 0) // key
		out = binary.LittleEndian.AppendUint64(out, 0) // event time
		out = binary.LittleEndian.AppendUint32(out, 0) // properties
		out = binary.LittleEndian.AppendUint32(out, pl)
		out = append(out, rec[len(rec)-int(pl):]...)
		result(unsafe.Pointer(&out[0]), int32(len(out)))
	}
	return 0
}

//go:wasmexport mb_handle
func handle(n int32) int32 { return 1 }

func main() {}
