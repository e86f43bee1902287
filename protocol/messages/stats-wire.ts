/**
 * The two wire forms of a `stats` window's sketch. Agents send `sketchBase64`: the sketch's binary
 * form (protocol/sketch/sketch-blob.ts, what the server stores) in base64, in place of the `sketch`
 * object. Parsing 8 KiB of JSON numbers was the largest part of the server's cost per window, and
 * the server now stores the bytes it received instead of encoding the sketch again. The server
 * accepts both forms (agents from before, and windows already in an agent's outbox, send `sketch`);
 * a payload with both, or with bytes that do not decode, is refused as `malformed`.
 *
 * @example
 * outbox.append('stats', toWireStats(message)); // agent
 * const w = sketchFromWire(raw); // server: { payload: raw with `sketch`, bytes } | { error }
 */
import { decodeSketch, encodeSketch, SketchBytesError } from '../sketch/sketch-blob.ts';
import type { StatsMessage } from './stats.ts';

/** A `stats` message as agents publish it. */
export type WireStatsMessage = Omit<StatsMessage, 'sketch'> & { sketchBase64: string };

/** The message with its sketch in the binary form, base64-encoded (key order otherwise kept). */
export function toWireStats(m: StatsMessage): WireStatsMessage {
  const { sketch, ...rest } = m;
  return { ...rest, sketchBase64: encodeSketch(sketch).toString('base64') };
}

type Obj = Record<string, unknown>;

/**
 * For a payload carrying `sketchBase64`: the payload with the decoded `sketch` object in its place
 * (for the same checks as the JSON form) and the decoded bytes (stored as they are).
 */
export function sketchFromWire(raw: Obj): { payload: Obj; bytes: Buffer } | { error: string } {
  const { sketchBase64: text, ...rest } = raw;
  if ('sketch' in raw) return { error: 'both sketch and sketchBase64' };
  if (typeof text !== 'string' || text.length % 4 !== 0) return { error: 'sketchBase64 is not base64' };
  const bytes = Buffer.from(text, 'base64');
  // Node's decoder skips characters that are not base64: then fewer bytes come out than the text holds.
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  if (bytes.length !== (text.length / 4) * 3 - padding) return { error: 'sketchBase64 is not base64' };
  try {
    return { payload: { ...rest, sketch: decodeSketch(bytes) }, bytes };
  } catch (err) {
    if (err instanceof SketchBytesError) return { error: `sketchBase64: ${err.message}` };
    throw err;
  }
}
