// Splits a batched entry (as the admin API returns it, with
// X-Pulsar-Num-Batch-Message) into its messages: each is a 4-byte big-endian
// size, a SingleMessageMetadata protobuf, then the payload. Only the fields
// the console shows are decoded.

function varint(b, pos) {
  let v = 0, mul = 1;
  for (;;) {
    if (pos >= b.length) throw new Error('truncated varint');
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, pos];
    mul *= 128;
  }
}

// fields reads a protobuf message into [field, wireType, value] triples.
function* fields(b) {
  let pos = 0;
  while (pos < b.length) {
    let key;
    [key, pos] = varint(b, pos);
    const f = Math.floor(key / 8), wt = key & 7;
    if (wt === 0) { let v; [v, pos] = varint(b, pos); yield [f, v]; } else if (wt === 2) {
      let n; [n, pos] = varint(b, pos);
      if (pos + n > b.length) throw new Error('truncated field');
      yield [f, b.subarray(pos, pos + n)]; pos += n;
    } else if (wt === 1) pos += 8; else if (wt === 5) pos += 4; else throw new Error('bad wire type ' + wt);
  }
}

const utf8 = (b) => new TextDecoder().decode(b);

export function splitBatch(bytes, count) {
  const out = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  for (let i = 0; i < count && pos + 4 <= bytes.length; i++) {
    const n = dv.getUint32(pos); pos += 4;
    if (pos + n > bytes.length) throw new Error('truncated batch metadata');
    const md = { properties: {}, payloadSize: 0 };
    for (const [f, v] of fields(bytes.subarray(pos, pos + n))) {
      if (f === 1) {
        let k = '', val = '';
        for (const [g, w] of fields(v)) { if (g === 1) k = utf8(w); else if (g === 2) val = utf8(w); }
        md.properties[k] = val;
      } else if (f === 2) md.key = utf8(v);
      else if (f === 3) md.payloadSize = v;
      else if (f === 5) md.eventTime = v ? new Date(v).toISOString() : undefined;
      else if (f === 8) md.sequenceId = v;
      else if (f === 9) md.nullValue = !!v;
    }
    pos += n;
    if (pos + md.payloadSize > bytes.length) throw new Error('truncated batch payload');
    out.push({ md, payload: bytes.subarray(pos, pos + md.payloadSize) });
    pos += md.payloadSize;
  }
  return out;
}
