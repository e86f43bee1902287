/**
 * A minimal protobuf wire-format reader: walks the fields of one message in a byte range without
 * decoding them. `inspectOnnx` uses it to read a model's structure while stepping over weight
 * payloads (raw_data, float_data, …) in one jump instead of materialising them — decoding a whole
 * 256 MB model with protobufjs made uploads 0.06× a plain file copy.
 *
 * @example
 * for (const f of fields(bytes, 0, bytes.length)) if (f.no === 1 && f.wire === VARINT) console.log(f.value);
 */

export const VARINT = 0;
export const LEN = 2;

export class WireError extends Error {}

export interface WireField {
  no: number;
  wire: number;
  /** VARINT: the value (exact up to 2^53). */
  value: number;
  /** LEN: the payload's byte range. */
  start: number;
  end: number;
}

/** Reads a varint at `pos`; returns [value, next position]. */
export function readVarint(buf: Uint8Array, pos: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new WireError('varint longer than 10 bytes');
}

/** The fields of the message in buf[start, end), in wire order. Throws WireError on malformed input. */
export function* fields(buf: Uint8Array, start: number, end: number): Generator<WireField> {
  let pos = start;
  while (pos < end) {
    const [key, p] = readVarint(buf, pos, end);
    pos = p;
    const no = Math.floor(key / 8);
    const wire = key & 7;
    if (no === 0) throw new WireError('field number 0');
    switch (wire) {
      case VARINT: {
        const [value, q] = readVarint(buf, pos, end);
        pos = q;
        yield { no, wire, value, start: pos, end: pos };
        break;
      }
      case 1: // fixed64
      case 5: {
        // fixed32
        const size = wire === 1 ? 8 : 4;
        if (pos + size > end) throw new WireError('truncated fixed-size field');
        yield { no, wire, value: 0, start: pos, end: pos + size };
        pos += size;
        break;
      }
      case LEN: {
        const [len, q] = readVarint(buf, pos, end);
        if (q + len > end) throw new WireError(`field ${no} runs past the end of its message`);
        yield { no, wire, value: len, start: q, end: q + len };
        pos = q + len;
        break;
      }
      default:
        throw new WireError(`unsupported wire type ${wire} (field ${no})`);
    }
  }
}

/** A LEN field's bytes as UTF-8 text. */
export function text(buf: Uint8Array, f: WireField): string {
  return Buffer.from(buf.buffer, buf.byteOffset + f.start, f.end - f.start).toString('utf8');
}

/** The int64 values of a repeated field, packed (one LEN field) or not (one VARINT each). */
export function pushInts(buf: Uint8Array, f: WireField, out: number[]): void {
  if (f.wire === VARINT) {
    out.push(f.value);
    return;
  }
  if (f.wire !== LEN) throw new WireError(`field ${f.no}: expected integers`);
  for (let pos = f.start; pos < f.end; ) {
    const [v, next] = readVarint(buf, pos, f.end);
    out.push(v);
    pos = next;
  }
}
