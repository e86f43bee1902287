// A maximum MQTT packet size for the embedded broker. aedes 1.2 / mqtt-packet 9 have no such option
// (moscajs/aedes#831): the parser buffers a whole packet before it looks at it, so one 100 MB publish
// costs the server hundreds of MB. The guard reads only each packet's fixed header (type byte +
// variable-length "remaining length") as bytes stream through, and refuses the connection as soon as a
// header announces more than `maxBytes` — before the body is buffered.
//
// It checks the connection's bytes where aedes takes them (guardReads), not through a stream pipeline
// in front of it: a Transform plus a Duplex wrapper per connection cost more than the rest of a
// reconnect (set-up, an AbortError with its stack trace on every close, and a wrapper whose writes
// bypassed the socket's cork, one syscall per piece of each outgoing packet).
import type { Readable } from 'node:stream';

export class PacketTooLarge extends Error {
  constructor(readonly bytes: number, readonly maxBytes: number) {
    super(`MQTT packet of ${bytes} bytes exceeds the maximum of ${maxBytes}`);
  }
}

/** Scans one connection's inbound bytes, in order, for fixed headers. */
export class PacketSizeGuard {
  private state: 'type' | 'length' = 'type';
  /** Body bytes still to pass before the next fixed header. */
  private skip = 0;
  private length = 0;
  private multiplier = 1;

  /** `maxBytes` bounds the whole packet (fixed header included), as MQTT 5's Maximum Packet Size does. */
  constructor(private readonly maxBytes: number) {}

  /** The next bytes of the connection: an error for the first header over the limit (or malformed), else undefined. */
  check(chunk: Buffer): Error | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++];
      if (this.state === 'type') {
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80) {
        // The remaining length has at most 4 bytes (MQTT 3.1.1 §2.2.3); mqtt-packet rejects more itself.
        if (this.multiplier > 128 ** 4) return new Error('malformed MQTT remaining length');
        continue;
      }
      const total = 1 + Math.log2(this.multiplier) / 7 + this.length;
      if (total > this.maxBytes) return new PacketTooLarge(total, this.maxBytes);
      this.skip = this.length;
      this.state = 'type';
    }
    return undefined;
  }
}

/**
 * Puts `guard` on `stream`'s read(): aedes consumes a connection with `read()` on 'readable', so every
 * byte it parses comes through here first. A refused chunk is never returned; the stream is destroyed
 * (the reader sees it close) after `onRefused` ran.
 */
export function guardReads(stream: Readable, guard: PacketSizeGuard, onRefused: (err: Error) => void): void {
  const read = stream.read;
  stream.read = function guardedRead(this: Readable, size?: number) {
    const chunk = read.call(this, size) as Buffer | null;
    if (chunk === null) return chunk;
    const err = guard.check(chunk);
    if (!err) return chunk;
    stream.read = () => null;
    onRefused(err);
    stream.destroy();
    return null;
  };
}
