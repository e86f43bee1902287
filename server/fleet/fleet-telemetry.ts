// The fleet page's per-device minute rollups, kept between requests: every request used to read the whole
// window's device rollups (a row per device per minute: 164,000 at 11,000 devices over 15 minutes) and parse
// their latency histograms (≈ 42 MB of JSON), although only the newest minutes change. Each minute is read
// once and held in a compact form: counters in typed arrays by device slot, and of each latency histogram
// only what a quantile needs (count, min, max and its non-zero buckets). A request reads the fleet rollup of
// each minute of the window (server/ingest/minute-fingerprints.ts) and reads again only the minutes whose
// fingerprint moved since they were held (the open minutes under ingest, a late report, retention) or that
// are not held; whoever did the ingest, on any replica. The answer is the one the plain read computes
// (fleet-telemetry.ts): integer sums in any order are exact, min and max are order-free, and the p95 comes
// from latencyQuantile over the same merged counts.
//
// Memory: ≈ 100–250 bytes a device-minute (≈ 1.5 MB a minute at 11,000 devices); past maxHeldBytes the
// least recently used minutes are let go, so a window larger than that is read again minute by minute at
// every request (the plain read's cost, one minute in memory at a time).
import { sql } from 'drizzle-orm';
import { LATENCY_BUCKETS, LATENCY_LAYOUT, latencyQuantile, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import { SketchMismatchError } from '../../protocol/sketch/errors.ts';
import type { Tx } from '../db/client.ts';
import { fleetMinutes } from '../ingest/minute-fingerprints.ts';

/** 128 MiB: ≈ 85 minutes of an 11,000-device fleet. */
export const DEFAULT_MAX_HELD_BYTES = 128 * 2 ** 20;
/** A minute no request used for this long goes (it slid out of every window polled). */
const IDLE_MS = 10 * 60_000;

export interface DeviceWindowTelemetry {
  ratePerSecond: number | null;
  errorRatio: number | null;
  p95: number | null;
}

/** One minute's device rollups, a row each; the latency's non-zero buckets of row r at [offsets[r], offsets[r + 1]). */
interface HeldMinute {
  fingerprint: string;
  /** When a request last used it (ms): the least recently used goes first, and one unused for IDLE_MS goes. */
  usedAt: number;
  slot: Int32Array;
  inferences: Float64Array;
  errors: Float64Array;
  /** first_start and last_at in ms. */
  from: Float64Array;
  to: Float64Array;
  count: Float64Array;
  /** NaN: null (an empty histogram). */
  min: Float64Array;
  max: Float64Array;
  offsets: Int32Array;
  bucket: Uint8Array;
  bucketCount: Float64Array;
  bytes: number;
}

/** [key, inferences, error_count, first_start, last_at] of one rollup row. */
type Counters = [string, number, number, string, string];

export class FleetWindowAggregate {
  /** Device id → slot in the accumulators; ids by slot. */
  private readonly slots = new Map<string, number>();
  private readonly ids: string[] = [];
  private readonly minutes = new Map<number, HeldMinute>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Minutes read from the database by the last request (for tests and profiles). */
  lastRead = 0;

  constructor(private readonly maxHeldBytes = DEFAULT_MAX_HELD_BYTES) {}

  /** Each device's telemetry over the minutes from `fromMs` on (no upper bound, as the plain read); one request at a time. */
  read(tx: Tx, fromMs: number): Promise<Map<string, DeviceWindowTelemetry>> {
    const run = this.queue.then(() => this.compute(tx, fromMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  heldBytes(): number {
    let n = 0;
    for (const m of this.minutes.values()) n += m.bytes;
    return n;
  }

  private async compute(tx: Tx, fromMs: number): Promise<Map<string, DeviceWindowTelemetry>> {
    const now = Date.now();
    // The fingerprints before the device rows (minute-fingerprints.ts).
    const fleet = await fleetMinutes(tx, fromMs);
    // Minutes in the window's range without a fleet row have no device rows either (retention took them).
    for (const minute of this.minutes.keys()) if (minute >= fromMs && !fleet.has(minute)) this.minutes.delete(minute);
    const window: HeldMinute[] = [];
    this.lastRead = 0;
    for (const [minute, f] of [...fleet].sort((a, b) => a[0] - b[0])) {
      let m = this.minutes.get(minute);
      if (!m || m.fingerprint !== f.fingerprint) {
        m = await this.readMinute(tx, minute, f.fingerprint);
        this.minutes.set(minute, m);
        this.lastRead++;
      }
      m.usedAt = now;
      window.push(m);
    }
    const out = this.sum(window);
    this.letGo(now);
    return out;
  }

  /** The device rollups of one minute through the bucket index (only that minute's rows), counters and latency as two texts. */
  private async readMinute(tx: Tx, minute: number, fingerprint: string): Promise<HeldMinute> {
    const [row] = await tx.all<{ counters: string | null; latency: string | null }>(sql`
      select group_concat(json_array(key, inferences, error_count, first_start, last_at), ',') as counters,
             group_concat(latency, ',') as latency
      from telemetry_rollups indexed by telemetry_rollups_bucket
      where bucket_start = ${new Date(minute).toISOString()} and scope = 'device'`);
    const counters = JSON.parse(`[${row?.counters ?? ''}]`) as Counters[];
    const latencies = JSON.parse(`[${row?.latency ?? ''}]`) as LatencyHistogram[];
    if (latencies.length !== counters.length) throw new Error('telemetry rollups: the counters and latency histograms of a minute differ in number');
    const n = counters.length;
    let nonZero = 0;
    for (const h of latencies) {
      if (h.layout !== LATENCY_LAYOUT || h.counts.length !== LATENCY_BUCKETS) throw new SketchMismatchError('buckets_mismatch', `latency layouts differ (${LATENCY_LAYOUT} vs ${h.layout})`);
      for (const c of h.counts) if (c !== 0) nonZero++;
    }
    const m: HeldMinute = {
      fingerprint,
      usedAt: 0,
      slot: new Int32Array(n),
      inferences: new Float64Array(n),
      errors: new Float64Array(n),
      from: new Float64Array(n),
      to: new Float64Array(n),
      count: new Float64Array(n),
      min: new Float64Array(n),
      max: new Float64Array(n),
      offsets: new Int32Array(n + 1),
      bucket: new Uint8Array(nonZero),
      bucketCount: new Float64Array(nonZero),
      bytes: n * 72 + nonZero * 9 + 200,
    };
    let k = 0;
    for (let r = 0; r < n; r++) {
      const [key, inferences, errors, from, to] = counters[r];
      const h = latencies[r];
      m.slot[r] = this.slotOf(key);
      m.inferences[r] = inferences;
      m.errors[r] = errors;
      m.from[r] = Date.parse(from);
      m.to[r] = Date.parse(to);
      m.count[r] = h.count;
      m.min[r] = h.minMs ?? NaN;
      m.max[r] = h.maxMs ?? NaN;
      m.offsets[r] = k;
      for (let b = 0; b < LATENCY_BUCKETS; b++) {
        const c = h.counts[b];
        if (c === 0) continue;
        m.bucket[k] = b;
        m.bucketCount[k++] = c;
      }
    }
    m.offsets[n] = k;
    return m;
  }

  /** Each device's sums over the minutes, then its rate, error ratio and p95 as the plain read computes them. */
  private sum(window: HeldMinute[]): Map<string, DeviceWindowTelemetry> {
    const slots = this.ids.length;
    const seen = new Uint8Array(slots);
    const inferences = new Float64Array(slots);
    const errors = new Float64Array(slots);
    const from = new Float64Array(slots).fill(Infinity);
    const to = new Float64Array(slots).fill(-Infinity);
    const count = new Float64Array(slots);
    const min = new Float64Array(slots).fill(NaN);
    const max = new Float64Array(slots).fill(NaN);
    const counts = new Float64Array(slots * LATENCY_BUCKETS);
    for (const m of window) {
      for (let r = 0; r < m.slot.length; r++) {
        const s = m.slot[r];
        seen[s] = 1;
        inferences[s] += m.inferences[r];
        errors[s] += m.errors[r];
        if (m.from[r] < from[s]) from[s] = m.from[r];
        if (m.to[r] > to[s]) to[s] = m.to[r];
        count[s] += m.count[r];
        // Math.min/max with NaN for null, as mergeLatencyInto treats a null side.
        if (!Number.isNaN(m.min[r])) min[s] = Number.isNaN(min[s]) ? m.min[r] : Math.min(min[s], m.min[r]);
        if (!Number.isNaN(m.max[r])) max[s] = Number.isNaN(max[s]) ? m.max[r] : Math.max(max[s], m.max[r]);
        const base = s * LATENCY_BUCKETS;
        for (let k = m.offsets[r]; k < m.offsets[r + 1]; k++) counts[base + m.bucket[k]] += m.bucketCount[k];
      }
    }
    const out = new Map<string, DeviceWindowTelemetry>();
    for (let s = 0; s < slots; s++) {
      if (!seen[s]) continue;
      const seconds = (to[s] - from[s]) / 1000;
      const latency: LatencyHistogram = {
        layout: LATENCY_LAYOUT,
        counts: Array.from(counts.subarray(s * LATENCY_BUCKETS, (s + 1) * LATENCY_BUCKETS)),
        count: count[s],
        sumMs: 0, // not needed by a quantile
        minMs: Number.isNaN(min[s]) ? null : min[s],
        maxMs: Number.isNaN(max[s]) ? null : max[s],
      };
      out.set(this.ids[s], {
        ratePerSecond: seconds > 0 ? inferences[s] / seconds : null,
        errorRatio: inferences[s] + errors[s] > 0 ? errors[s] / (inferences[s] + errors[s]) : null,
        p95: latencyQuantile(latency, 0.95),
      });
    }
    return out;
  }

  /**
   * Minutes unused for IDLE_MS go; past the memory bound the least recently used go too (a window larger than
   * the bound is then read again at each request).
   */
  private letGo(now: number): void {
    let bytes = 0;
    let widest = 0;
    for (const [minute, m] of this.minutes) {
      if (now - m.usedAt > IDLE_MS) this.minutes.delete(minute);
      else {
        bytes += m.bytes;
        widest = Math.max(widest, m.slot.length);
      }
    }
    if (bytes > this.maxHeldBytes) {
      for (const [minute, m] of [...this.minutes].sort((a, b) => a[1].usedAt - b[1].usedAt || a[0] - b[0])) {
        if (bytes <= this.maxHeldBytes) break;
        this.minutes.delete(minute);
        bytes -= m.bytes;
      }
    }
    // Slots of devices no held minute has (deleted, or gone quiet) outnumber the rest: start over, read all next time.
    if (this.ids.length > 2 * widest + 1024) {
      this.minutes.clear();
      this.slots.clear();
      this.ids.length = 0;
    }
  }

  private slotOf(id: string): number {
    let s = this.slots.get(id);
    if (s === undefined) {
      s = this.ids.length;
      this.slots.set(id, s);
      this.ids.push(id);
    }
    return s;
  }
}

/** One aggregate per database (one control plane's). */
const kept = new WeakMap<object, FleetWindowAggregate>();

/** Forgets `db`'s aggregate (the bench's "first request after a restart"). */
export function dropFleetWindowAggregate(db: object): void {
  kept.delete(db);
}

export function fleetWindowAggregate(db: object): FleetWindowAggregate {
  let a = kept.get(db);
  if (!a) kept.set(db, (a = new FleetWindowAggregate()));
  return a;
}

/** Each device's telemetry over the minute buckets from `fromBucket` on (devices without rollups are absent), from `db`'s aggregate. */
export function deviceWindowTelemetry(db: Tx, fromBucket: string): Promise<Map<string, DeviceWindowTelemetry>> {
  return fleetWindowAggregate(db).read(db, Date.parse(fromBucket));
}
