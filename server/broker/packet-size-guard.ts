// A maximum MQTT packet size for the embedded broker. aedes 1.2 / mqtt-packet 9 have no such option
// (moscajs/aedes#831): the parser buffers a whole packet before it looks at it, so one 100 MB publish
// costs the server hundreds of MB. This transform sits between the socket and aedes, reads only each
// packet's fixed header (type byte + variable-length "remaining length") as bytes stream through, and
// fails the stream as soon as a header announces more than `maxBytes` — before the body is buffered.
import { Transform, type TransformCallback } from 'node:stream';

export class PacketTooLarge extends Error {
  constructor(readonly bytes: number, readonly maxBytes: number) {
    super(`MQTT packet of ${bytes} bytes exceeds the maximum of ${maxBytes}`);
  }
}

export class PacketSizeGuard extends Transform {
  private state: 'type' | 'length' = 'type';
  /** Body bytes still to pass before the next fixed header. */
  private skip = 0;
  private length = 0;
  private multiplier = 1;

  /** `maxBytes` bounds the whole packet (fixed header included), as MQTT 5's Maximum Packet Size does. */
  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
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
        if (this.multiplier > 128 ** 4) return done(new Error('malformed MQTT remaining length'));
        continue;
      }
      const total = 1 + Math.log2(this.multiplier) / 7 + this.length;
      if (total > this.maxBytes) return done(new PacketTooLarge(total, this.maxBytes));
      this.skip = this.length;
      this.state = 'type';
    }
    done(null, chunk);
  }
}
