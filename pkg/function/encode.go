package function

import (
	"encoding/binary"

	"github.com/messagebus/messagebus/pkg/function/abi"
)

// The SDK's encoding of a batch call's result (ABI version 2), written
// inline rather than through package abi's general functions: in a Go
// wasm module a function call costs more than copying a small record, and
// this runs for every message.

// resultHeadSize is the head of a successful result: u8 status, u8 ack,
// an empty error (u32 0) and the u32 output count. The SDK reserves it in
// front of the outputs and fills it in when the message is done, so that
// the result goes to the host without another copy.
const resultHeadSize = 10

// appendOutputEntry appends one output of a result: a u32 length and the
// output record (abi.AppendOutput's format).
func appendOutputEntry(b []byte, topic string, m *Message) []byte {
	var ev int64
	if !m.EventTime.IsZero() {
		ev = m.EventTime.UnixMilli()
	}
	if len(m.Properties) > 0 {
		o := abi.Output{Topic: topic, Key: m.Key, Properties: m.Properties, Payload: m.Payload, EventTime: ev}
		at := len(b)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = abi.AppendOutput(b, &o)
		binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		return b
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(4+len(topic)+4+len(m.Key)+8+4+4+len(m.Payload)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(topic)))
	b = append(b, topic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Key)))
	b = append(b, m.Key...)
	b = binary.LittleEndian.AppendUint64(b, uint64(ev))
	b = binary.LittleEndian.AppendUint32(b, 0) // no properties
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Payload)))
	return append(b, m.Payload...)
}

// putResultHead writes a successful result's head into b[:resultHeadSize].
func putResultHead(b []byte, ack int32, outputs int) {
	b[0], b[1] = byte(abi.ResultOK), byte(ack)
	binary.LittleEndian.PutUint32(b[2:], 0)
	binary.LittleEndian.PutUint32(b[6:], uint32(outputs))
}
