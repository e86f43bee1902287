// A rollout stage's device rollups, kept between ticks: each tick used to read every rollup row of the
// stage since it started (a row per device per minute: 110,000 at 10,000 devices after ten minutes,
// most of a 2 s tick) although only the last minutes change. Whole minutes ("sealed": ended a minute
// or more ago) are read once and kept per device: their counters per minute, and their latency merged
// per device; each tick reads only the minutes not sealed yet, the minutes that became sealed, and the
// devices it has not seen. A late report (store and forward) for a sealed minute is caught through the
// fleet rollup of that minute (server/ingest/minute-fingerprints.ts): a sealed minute whose fleet row changed
// (reports, updated_at, or gone to retention) is read again for the stage's devices, and each device
// whose reports count there moved is read again whole. The answer is the one-read answer (stage-rollups.ts:
// the same sums, the same merged latency counts, min and max); when a window does not fit what is kept
// (time going backwards), that read answers.
import { sql, type SQL } from 'drizzle-orm';
import { cloneLatencyHistogram, mergeJoinedLatencies, mergeLatencyHistograms, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { fleetMinutes } from '../ingest/minute-fingerprints.ts';
import { readDeviceRollups, type StageCuts, type StageRollups, type StageWindow } from './stage-rollups.ts';

const MINUTE = 60_000;
/** Bytes per device per held minute: reports (Int32), inferences and errors (Float64). */
const BYTES_PER_DEVICE_MINUTE = 20;
/**
 * What one stage's held minutes may take: 128 MiB is ≈ 6.5 h of a 10,000-device stage (16,384 slots ×
 * 20 B a minute), 4.5 days of a 1,000-device one. Past it the aggregate lets go of what it holds and
 * the one-read query answers every later tick of the stage (as before the aggregate: slower, bounded memory).
 */
export const DEFAULT_MAX_HELD_BYTES = 128 * 2 ** 20;
const iso = (ms: number) => new Date(ms).toISOString();

/** Counters of the stage's devices in one sealed minute, by device index, and the fleet row seen when read. */
interface Minute {
  fleet: string;
  reports: Int32Array;
  inferences: Float64Array;
  errors: Float64Array;
}

interface Unsealed {
  /** The `end` the unsealed minutes were read up to, and for which devices. */
  end: number;
  ids: Set<string>;
  inferences: Map<string, number>;
  errors: Map<string, number>;
  latency: Map<string, LatencyHistogram>;
}

interface CounterRow {
  key: string;
  bucket: string;
  reports: number;
  inferences: number;
  errors: number;
}

/** Counters a row per device-minute; latency a row per device, its histograms joined by SQLite. */
interface RollupRows {
  counters: CounterRow[];
  latency: Array<{ key: string; latency: string }>;
}

export class StageAggregate {
  /** The earliest minute a stage's window reads: the error rate's may start a minute before the stage's (rollout-gates.ts). */
  readonly firstMinute: number;
  /** Minutes before this one (from firstMinute) are held. */
  private sealedUntil: number;
  private readonly index = new Map<string, number>();
  private capacity = 0;
  private readonly minutes = new Map<number, Minute>();
  /** Each held device's latency over the sealed minutes from its cut (absent: none). */
  private readonly latency = new Map<string, LatencyHistogram>();
  /** The cut each held device's latency was read from (absent: its latency is not read). */
  private readonly cuts = new Map<string, number>();
  private unsealed: Unsealed | null = null;
  /** The most reports a fleet rollup of the stage's minutes holds: an upper bound of the device rows per minute. */
  private fleetPerMinute = 0;
  /** Refreshes run one at a time (a tick's read outside its transaction, then inside it). */
  private queue: Promise<unknown> = Promise.resolve();

  /** Set once the held minutes outgrew maxHeldBytes: the stage is answered by the one-read query from then on. */
  private exhausted = false;

  constructor(
    readonly identity: string,
    stageStartedAt: string,
    private readonly maxHeldBytes = DEFAULT_MAX_HELD_BYTES,
  ) {
    const start = Date.parse(stageStartedAt);
    this.firstMinute = Math.floor(start / MINUTE) * MINUTE - MINUTE;
    this.sealedUntil = this.firstMinute;
  }

  /** The devices held (those of the last reads): what the next read before the transaction reads for. */
  heldIds(): string[] {
    return [...this.index.keys()];
  }

  /** Whether `window` can be answered from what is kept (else the one-read query answers it). */
  fits(window: StageWindow): boolean {
    if (!this.exhausted && this.heldBytes() > this.maxHeldBytes) {
      this.exhausted = true;
      this.reset();
    }
    if (this.exhausted) return false;
    const from = Math.floor(window.from.getTime() / MINUTE) * MINUTE;
    return from >= this.firstMinute && window.end.getTime() >= this.sealedUntil + MINUTE;
  }

  /**
   * The stage's rollups over `window` for `ids`: brings the kept minutes up to window.end and reads the
   * minutes not sealed yet. A second read for the same end and devices reads nothing from the database
   * (the ticker reads before its transaction and again inside it, rollout-ticker.ts).
   */
  read(tx: Tx, ids: readonly string[], window: StageWindow): Promise<StageRollups> {
    const run = this.queue.then(async () => {
      await this.refresh(tx, ids, window.end.getTime(), window.cuts);
      return this.compose(ids, window);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private compose(ids: readonly string[], window: StageWindow): StageRollups {
    const u = this.unsealed!;
    const from = Math.floor(window.from.getTime() / MINUTE) * MINUTE;
    let inferences = 0;
    let errors = 0;
    // Each device's held minutes from its cut (the cut the held data was read with), then its unsealed ones.
    const at = ids.flatMap((id) => {
      const cut = this.cuts.get(id);
      return cut === undefined ? [] : [{ i: this.index.get(id)!, from: Math.max(from, cut) }];
    });
    for (const [minute, m] of this.minutes) {
      for (const { i, from } of at) {
        if (minute < from) continue;
        inferences += m.inferences[i];
        errors += m.errors[i];
      }
    }
    for (const id of ids) {
      inferences += u.inferences.get(id) ?? 0;
      errors += u.errors.get(id) ?? 0;
    }
    // A copy of the map: a later read replaces (never changes) the histograms it holds.
    const sealed = new Map(this.latency);
    const recent = u.latency;
    return {
      inferences,
      errors,
      latencyOf: (id) => {
        const kept = sealed.get(id);
        const h = recent.get(id);
        if (!h) return kept ? cloneLatencyHistogram(kept) : null;
        return kept ? mergeLatencyHistograms(kept, h) : cloneLatencyHistogram(h);
      },
    };
  }

  private async refresh(tx: Tx, ids: readonly string[], end: number, cuts: StageCuts): Promise<void> {
    const u = this.unsealed;
    // A held device whose cut moved (it switched, or went back) is read again whole, in catchUp.
    const recut = ids.filter((id) => this.index.has(id) && this.cuts.get(id) !== cuts.get(id));
    const missing = u && u.end === end && !recut.length ? ids.filter((id) => !u.ids.has(id)) : null;
    if (missing && !missing.length) return;
    try {
      if (missing) await this.addDevices(tx, missing, u!, cuts);
      else await this.catchUp(tx, ids, end, cuts, recut);
    } catch (err) {
      // A read failed half-way (e.g. the database busy): what is held may be partial, so nothing is.
      this.reset();
      throw err;
    }
  }

  /** Devices new since the read for the same end (e.g. joined between the read before the transaction and it): theirs alone. */
  private async addDevices(tx: Tx, ids: readonly string[], u: Unsealed, cuts: StageCuts): Promise<void> {
    const fresh = ids.filter((id) => !this.index.has(id));
    for (const id of fresh) this.hold(id, cuts);
    this.add(await this.readRows(tx, fresh, this.firstMinute, this.sealedUntil));
    const more = await this.readUnsealed(tx, ids, u.end);
    for (const id of ids) u.ids.add(id);
    for (const [k, v] of more.inferences) u.inferences.set(k, v);
    for (const [k, v] of more.errors) u.errors.set(k, v);
    for (const [k, v] of more.latency) u.latency.set(k, v);
  }

  /** The counters' arrays held: a slot per device (capacity) per sealed minute. */
  heldBytes(): number {
    return this.minutes.size * this.capacity * BYTES_PER_DEVICE_MINUTE;
  }

  private reset(): void {
    this.index.clear();
    this.capacity = 0;
    this.minutes.clear();
    this.latency.clear();
    this.cuts.clear();
    this.unsealed = null;
    this.sealedUntil = this.firstMinute;
    this.fleetPerMinute = 0;
  }

  private async catchUp(tx: Tx, ids: readonly string[], end: number, cuts: StageCuts, recut: readonly string[]): Promise<void> {
    const sealTo = Math.max(this.sealedUntil, Math.floor(end / MINUTE) * MINUTE - MINUTE);
    // The fleet rows before the device rows (minute-fingerprints.ts).
    const fleet = await fleetMinutes(tx, this.firstMinute, end);
    const fingerprint = (minute: number) => fleet.get(minute)?.fingerprint ?? 'none';
    // A fleet row's reports bound the device rows of its minute from above.
    for (const f of fleet.values()) this.fleetPerMinute = Math.max(this.fleetPerMinute, f.reports);
    const held = [...this.index.keys()];
    // Sealed minutes that changed since they were read: the devices whose count there moved are read again whole.
    const dirty = new Set<string>();
    for (const [minute, m] of this.minutes) {
      if (m.fleet === fingerprint(minute)) continue;
      const current = new Map((await this.readReports(tx, held, minute)).map((r) => [r.key, r.reports]));
      for (const id of held) if ((current.get(id) ?? 0) !== m.reports[this.index.get(id)!]) dirty.add(id);
      m.fleet = fingerprint(minute);
    }
    for (const id of recut) {
      this.setCut(id, cuts);
      dirty.add(id);
    }
    if (dirty.size) {
      for (const id of dirty) this.forget(id);
      this.add(await this.readRows(tx, [...dirty], this.firstMinute, this.sealedUntil));
    }
    // Devices not held yet, over the sealed minutes.
    const fresh = ids.filter((id) => !this.index.has(id));
    for (const id of fresh) this.hold(id, cuts);
    if (fresh.length && this.sealedUntil > this.firstMinute) this.add(await this.readRows(tx, fresh, this.firstMinute, this.sealedUntil));
    // Minutes sealed since the last refresh.
    if (sealTo > this.sealedUntil) {
      for (let minute = this.sealedUntil; minute < sealTo; minute += MINUTE) this.minuteAt(minute).fleet = fingerprint(minute);
      const all = [...this.index.keys()];
      const from = this.sealedUntil;
      this.sealedUntil = sealTo;
      this.add(await this.readRows(tx, all, from, sealTo));
    }
    this.unsealed = await this.readUnsealed(tx, ids, end);
  }

  /**
   * Rollups of a few minutes, read through the bucket index when the stage is a good part of the fleet: ingest
   * writes a minute's rows together, so they lie on neighbouring pages, where one device after another (the
   * primary key) lands on a page per row (20,000 rows of two minutes: 0.04 s against 0.19 s; sqlite3 at load 11).
   */
  private table(devices: number): SQL {
    return devices * 4 >= this.fleetPerMinute ? sql`telemetry_rollups indexed by telemetry_rollups_bucket` : sql`telemetry_rollups`;
  }

  /**
   * The device rollups of `ids` in [from, to): counters a row each (no text), latency joined per device by
   * SQLite (a JSON.parse per device, not per row: row by row, a restart's first read of a 10-minute stage at
   * 10,000 devices took 11.8 s against about 4 s for the one grouped read, load 15).
   */
  private async readRows(tx: Tx, ids: readonly string[], from: number, to: number): Promise<RollupRows> {
    if (!ids.length || from >= to) return { counters: [], latency: [] };
    const table = this.table(ids.length);
    const counters = await tx.all<CounterRow>(sql`
      select key, bucket_start as bucket, reports, inferences, error_count as errors from ${table}
      where scope = 'device' and ${inIds(sql`key`, ids)} and bucket_start >= ${iso(from)} and bucket_start < ${iso(to)}`);
    const latency = (await readDeviceRollups(tx, table, ids, this.cuts, from, to)).flatMap((r) => (r.latency ? [{ key: r.key, latency: r.latency }] : []));
    return { counters, latency };
  }

  /** The reports count of each device rollup of `ids` in one minute (what a late report moves). */
  private readReports(tx: Tx, ids: readonly string[], minute: number): Promise<Array<{ key: string; reports: number }>> {
    return tx.all(sql`select key, reports from ${this.table(ids.length)} where scope = 'device' and ${inIds(sql`key`, ids)} and bucket_start = ${iso(minute)}`);
  }

  /** The minutes from sealedUntil up to `end`, one grouped row per device from its cut (as stage-rollups.ts reads a whole window). */
  private async readUnsealed(tx: Tx, ids: readonly string[], end: number): Promise<Unsealed> {
    const out: Unsealed = { end, ids: new Set(ids), inferences: new Map(), errors: new Map(), latency: new Map() };
    for (const r of await readDeviceRollups(tx, this.table(ids.length), ids, this.cuts, this.sealedUntil, end)) {
      out.inferences.set(r.key, r.inferences);
      out.errors.set(r.key, r.errors);
      // Parsed here, before the transaction, not when the gate asks.
      if (r.latency) out.latency.set(r.key, mergeJoinedLatencies(r.latency));
    }
    return out;
  }

  private add(rows: RollupRows): void {
    for (const r of rows.counters) {
      const m = this.minutes.get(Date.parse(r.bucket));
      if (!m) continue; // a minute not kept (read for a range that moved meanwhile)
      const i = this.index.get(r.key)!;
      m.reports[i] = r.reports;
      m.inferences[i] = r.inferences;
      m.errors[i] = r.errors;
    }
    for (const r of rows.latency) {
      const h = mergeJoinedLatencies(r.latency);
      const kept = this.latency.get(r.key);
      this.latency.set(r.key, kept ? mergeLatencyHistograms(kept, h) : h);
    }
  }

  /** Drops what is held of one device (its counters and latency), before it is read again. */
  private forget(id: string): void {
    const i = this.index.get(id)!;
    for (const m of this.minutes.values()) {
      m.reports[i] = 0;
      m.inferences[i] = 0;
      m.errors[i] = 0;
    }
    this.latency.delete(id);
  }

  /** Starts holding a device, its latency from its cut. */
  private hold(id: string, cuts: StageCuts): void {
    this.indexOf(id);
    this.setCut(id, cuts);
  }

  private setCut(id: string, cuts: StageCuts): void {
    const cut = cuts.get(id);
    if (cut === undefined) this.cuts.delete(id);
    else this.cuts.set(id, cut);
  }

  private indexOf(id: string): number {
    let i = this.index.get(id);
    if (i !== undefined) return i;
    i = this.index.size;
    this.index.set(id, i);
    if (i >= this.capacity) {
      this.capacity = Math.max(1024, this.capacity * 2);
      for (const m of this.minutes.values()) Object.assign(m, grown(m, this.capacity));
    }
    return i;
  }

  private minuteAt(minute: number): Minute {
    let m = this.minutes.get(minute);
    if (!m) this.minutes.set(minute, (m = { fleet: 'none', reports: new Int32Array(this.capacity), inferences: new Float64Array(this.capacity), errors: new Float64Array(this.capacity) }));
    return m;
  }
}

function grown(m: Minute, capacity: number): Pick<Minute, 'reports' | 'inferences' | 'errors'> {
  const reports = new Int32Array(capacity);
  const inferences = new Float64Array(capacity);
  const errors = new Float64Array(capacity);
  reports.set(m.reports);
  inferences.set(m.inferences);
  errors.set(m.errors);
  return { reports, inferences, errors };
}

/** The aggregates kept per database (one control plane's) and rollout: one stage each, replaced when the stage changes. */
const kept = new WeakMap<object, Map<string, StageAggregate>>();

export function stageAggregate(db: object, rollout: { id: string; stage: number; stageStartedAt: string }): StageAggregate {
  let byRollout = kept.get(db);
  if (!byRollout) kept.set(db, (byRollout = new Map()));
  const identity = `${rollout.stage}|${rollout.stageStartedAt}`;
  let a = byRollout.get(rollout.id);
  if (!a || a.identity !== identity) byRollout.set(rollout.id, (a = new StageAggregate(identity, rollout.stageStartedAt)));
  return a;
}

/** Forgets the aggregates of rollouts no longer running. */
export function keepStageAggregates(db: object, running: ReadonlySet<string>): void {
  const byRollout = kept.get(db);
  if (byRollout) for (const id of byRollout.keys()) if (!running.has(id)) byRollout.delete(id);
}
