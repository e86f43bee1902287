// The reconnect storm as a timeline: every simulated device's connect attempts (time and outcome) and
// when its desired state arrived, bucketed per second from the SIGTERM, plus where the slowest tenth's
// time went (waiting out the restart, shed with "busy", waiting in a backoff window, or connected but
// waiting for `desired`). This is what explains a tail, where a single "all back after" number cannot.
import type { ConnectOutcome } from '../agent/mqtt-session.ts';
import { percentile } from './lib.ts';

export interface DeviceTrace {
  /** [time it ended, outcome, ms it took] */
  attempts: Array<[number, ConnectOutcome, number]>;
  /** When the restart closed its connection (undefined if it never saw the close). */
  droppedAt?: number;
  connectedAt: number;
  desiredAt: number;
}

export interface TimelineMarks {
  /** SIGTERM to the old process. */
  t0: number;
  /** The old process exited (nothing listens from here until the new one does). */
  stopped: number;
  /** The new process answers /healthz. */
  ready: number;
}

const OUTCOMES: ConnectOutcome[] = ['refused', 'lost', 'busy', 'denied', 'ok'];

export interface TailSummary {
  devices: number;
  /** Connect attempts per device after the new process was ready (the ok one included). */
  attemptsAfterReady: number;
  /** Share of devices shed at least once ("busy") after the new process was ready. */
  shedShare: number;
  /** New process ready → the device's first attempt at it (p50, seconds): the wait out of the restart's backoff window. */
  firstAttemptAfterReadyP50S: number;
  /** Last failed attempt → the ok one (p50, seconds): the last backoff wait. */
  lastWaitP50S: number;
  /** CONNACK 0 → desired state arrived (p50 / p99, seconds). */
  okToDesiredP50S: number;
  okToDesiredP99S: number;
}

function summarize(traces: DeviceTrace[], marks: TimelineMarks): TailSummary {
  const s = (xs: number[], p: number) => percentile(xs.sort((a, b) => a - b), p) / 1000;
  const after = traces.map((t) => t.attempts.filter(([at]) => at >= marks.ready));
  const firsts = after.filter((a) => a.length).map((a) => a[0][0] - marks.ready);
  const lastWaits: number[] = [];
  for (const t of traces) {
    const okIdx = t.attempts.findIndex(([, o]) => o === 'ok');
    if (okIdx > 0) lastWaits.push(t.attempts[okIdx][0] - t.attempts[okIdx - 1][0]);
  }
  const okToDesired = traces.map((t) => Math.max(0, t.desiredAt - t.connectedAt));
  return {
    devices: traces.length,
    attemptsAfterReady: after.reduce((n, a) => n + a.length, 0) / Math.max(1, traces.length),
    shedShare: after.filter((a) => a.some(([, o]) => o === 'busy')).length / Math.max(1, traces.length),
    firstAttemptAfterReadyP50S: s(firsts, 50),
    lastWaitP50S: s(lastWaits, 50),
    okToDesiredP50S: s(okToDesired, 50),
    okToDesiredP99S: s(okToDesired, 99),
  };
}

export interface Timeline {
  /** Per bucket from t0: attempts by outcome and devices back (connected with desired state). */
  buckets: Array<{ fromS: number } & Record<ConnectOutcome | 'dropped' | 'back', number>>;
  bucketS: number;
  all: TailSummary;
  /** The devices back after the 90th percentile. */
  tail: TailSummary;
  /** Per outcome after the new process was ready: p50 and max of how long an attempt took (ms); a `lost` at ~10 s is a connect timeout. */
  durations: Partial<Record<ConnectOutcome, { n: number; p50Ms: number; maxMs: number }>>;
}

export function buildTimeline(traces: DeviceTrace[], marks: TimelineMarks): Timeline {
  const back = traces.map((t) => Math.max(t.connectedAt, t.desiredAt));
  let end = Math.max(...back);
  for (const t of traces) for (const [time] of t.attempts) end = Math.max(end, time);
  // 1 s buckets, wider for long storms so the printout stays readable.
  const bucketS = Math.max(1, Math.ceil((end - marks.t0) / 1000 / 60));
  const n = Math.floor((end - marks.t0) / 1000 / bucketS) + 1;
  const buckets = Array.from({ length: n }, (_, i) => ({ fromS: i * bucketS, dropped: 0, refused: 0, lost: 0, busy: 0, denied: 0, ok: 0, back: 0 }));
  const at = (t: number) => buckets[Math.min(n - 1, Math.max(0, Math.floor((t - marks.t0) / 1000 / bucketS)))];
  for (const t of traces) for (const [time, outcome] of t.attempts) at(time)[outcome]++;
  for (const b of back) at(b).back++;
  for (const t of traces) if (t.droppedAt !== undefined) at(t.droppedAt).dropped++;
  const p90 = percentile([...back].sort((a, b) => a - b), 90);
  const durations: Timeline['durations'] = {};
  for (const o of OUTCOMES) {
    const ms = traces.flatMap((t) => t.attempts.filter(([time, outcome]) => outcome === o && time >= marks.ready).map(([, , d]) => d)).sort((a, b) => a - b);
    if (ms.length) durations[o] = { n: ms.length, p50Ms: percentile(ms, 50), maxMs: ms.at(-1)! };
  }
  return { buckets, bucketS, all: summarize(traces, marks), tail: summarize(traces.filter((_, i) => back[i] > p90), marks), durations };
}

export function printTimeline(tl: Timeline, marks: TimelineMarks, total: number): void {
  const stoppedS = (marks.stopped - marks.t0) / 1000;
  const readyS = (marks.ready - marks.t0) / 1000;
  console.log(`\nconnect attempts per ${tl.bucketS} s from SIGTERM (old process gone at ${stoppedS.toFixed(1)} s, new one ready at ${readyS.toFixed(1)} s)`);
  const head = ['t (s)', 'dropped', ...OUTCOMES, 'back', 'back %'];
  console.log(head.map((h) => h.padStart(8)).join(''));
  let cumulative = 0;
  for (const b of tl.buckets) {
    cumulative += b.back;
    const marksHere = [stoppedS, readyS].filter((m) => m >= b.fromS && m < b.fromS + tl.bucketS);
    const tag = marksHere.length ? `  ← ${marksHere.map((m) => (m === readyS ? 'ready' : 'stopped')).join(', ')}` : '';
    const cells = [b.fromS, b.dropped, ...OUTCOMES.map((o) => b[o]), b.back, ((100 * cumulative) / total).toFixed(1)];
    console.log(cells.map((c) => String(c).padStart(8)).join('') + ' ' + '#'.repeat(Math.round((40 * b.back) / Math.max(1, ...tl.buckets.map((x) => x.back)))) + tag);
  }
  const d = Object.entries(tl.durations).map(([o, x]) => `${o} ${x.n} (p50 ${(x.p50Ms / 1000).toFixed(2)} s, max ${(x.maxMs / 1000).toFixed(1)} s)`);
  console.log(`attempts after ready, how long each took: ${d.join('; ')}`);
  for (const [label, s] of [['all devices', tl.all], ['slowest 10%', tl.tail]] as const) {
    console.log(
      `${label} (${s.devices}): ${s.attemptsAfterReady.toFixed(2)} attempts after ready, ${(100 * s.shedShare).toFixed(0)}% shed at least once; ` +
        `ready → first attempt p50 ${s.firstAttemptAfterReadyP50S.toFixed(1)} s; last failure → ok p50 ${s.lastWaitP50S.toFixed(1)} s; ` +
        `ok → desired p50 ${s.okToDesiredP50S.toFixed(2)} s, p99 ${s.okToDesiredP99S.toFixed(2)} s`,
    );
  }
}
