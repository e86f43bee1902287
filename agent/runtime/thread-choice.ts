/**
 * Which thread a model runs on when the host is asked to choose (`ModelHost` with `thread: 'auto'`,
 * the agent's `--inference-thread auto`): every model starts in the inference worker, its runs there are
 * timed, and after each `AUTO_RUNS` of them the host chooses again; a cheap model is then served on the
 * agent's own thread for good (it never moves back). Choosing again matters: a fresh worker's first runs go through cold
 * JavaScript (onnxruntime's wrapper, not yet optimised, while V8's one background thread is busy), and
 * on the loaded 2-core machine the 8→3 MLP's first 16 runs measured p50 209 µs in the agent, its later
 * ones 15–40 µs. A model never moves back: its steady cost does not change with time.
 *
 * Why these limits (agent/README.md, "Where the model runs"): the hand-off to the worker and back costs
 * ≈ 100–130 µs of wall time a request on this 2-core machine, and about as much of the main thread's own
 * CPU (`postMessage`, the wake-up). A run of at most `MAIN_MAX_P50_US` (200 µs, two hand-offs) on the main
 * thread blocks its loop for no longer than the hand-off kept it busy, so the agent loses nothing and the
 * request saves the hop; beyond that the run, not the hop, is the cost, and the worker's other core is
 * worth more. `MAIN_MAX_WORST_US` (1 ms) bounds the slow runs: a model whose slow runs block MQTT and
 * HTTP for milliseconds stays in the worker however fast its median. The worst is the second slowest of
 * the runs, so one run that the scheduler interrupted on a busy machine does not decide. A model file
 * over `MAIN_MAX_MODEL_BYTES` is not measured at all: the move loads a second session on the main thread
 * (onnxruntime parses the graph there, blocking the loop for a time that grows with the file) and holds
 * both sessions until the worker's is drained.
 */

/** Runs timed in the worker per choice (the smoke tests count). */
export const AUTO_RUNS = 16;
/**
 * Choices made every `AUTO_RUNS` runs; after them the host chooses after twice as many windows each
 * time, up to every `MAX_WINDOWS_BETWEEN_CHOICES` windows. A model measured while the device was
 * loaded (seen: 8 windows at p50 > 200 µs in an agent started during a CPU-heavy burst, the MLP's steady
 * runs taking 57 µs) is looked at again once the load has gone, at a cost that shrinks to nothing.
 * A move loads the model from the file the host holds open (model-file.ts): the agent moves a bundle's
 * files from staging to bundles/ when it activates it, so the path it was loaded from is gone by then.
 */
export const MAX_CHOICES = 8;
export const MAX_WINDOWS_BETWEEN_CHOICES = 256;

/** Windows of `AUTO_RUNS` runs to let pass before the next choice, after `choices` choices that kept the model in the worker. */
export function windowsBeforeNextChoice(choices: number): number {
  if (choices < MAX_CHOICES) return 0;
  return Math.min(2 ** (choices - MAX_CHOICES + 1), MAX_WINDOWS_BETWEEN_CHOICES) - 1;
}
const WARM_UP_RUNS = 1;
export const MAIN_MAX_P50_US = 200;
export const MAIN_MAX_WORST_US = 1000;
export const MAIN_MAX_MODEL_BYTES = 8 * 1024 * 1024;

export type InferenceThread = 'worker' | 'main';

/** Where a loaded model runs, and why: what `/v1/status` and the agent's log show operators. */
export interface Placement {
  /** What the host was asked for. */
  mode: InferenceThread | 'auto';
  /** Where its runs go now. */
  thread: InferenceThread;
  reason: string;
  /** Choices made so far ('auto'; the first after `AUTO_RUNS` timed runs). */
  choices: number;
  /** Its last `AUTO_RUNS` timed runs (fewer before that many), µs per session.run, on the thread it ran on then. */
  runs?: { timed: number; p50Us: number; worstUs: number };
}

/** A model's run times, `AUTO_RUNS` at a time. */
export class RunTimes {
  private window: number[] = [];
  private last: number[] | undefined;
  private seen = 0;

  /** True when this run completed a window of `AUTO_RUNS` (time to choose). */
  add(runUs: number): boolean {
    // The first run of a session is not timed: onnxruntime sets up its buffers in it (measured here:
    // 0.2–0.7 ms for the 8→3 MLP whose later runs take 15–40 µs).
    if (this.seen++ < WARM_UP_RUNS) return false;
    this.window.push(runUs);
    if (this.window.length < AUTO_RUNS) return false;
    this.last = this.window;
    this.window = [];
    return true;
  }

  /** The last complete window, or the runs so far before the first. */
  summary(): Placement['runs'] {
    const us = this.last ?? this.window;
    if (us.length === 0) return undefined;
    const sorted = [...us].sort((a, b) => a - b);
    // The second slowest once there are a few: one preempted run must not decide (see above).
    const worst = sorted[sorted.length - (sorted.length >= 4 ? 2 : 1)];
    return { timed: sorted.length, p50Us: round(sorted[Math.floor((sorted.length - 1) / 2)]), worstUs: round(worst) };
  }
}

/** The choice once the runs are timed. */
export function chooseThread(runs: NonNullable<Placement['runs']>): { thread: InferenceThread; reason: string } {
  const measured = `run p50 ${fmt(runs.p50Us)}, worst ${fmt(runs.worstUs)} (the last ${runs.timed} runs in the worker)`;
  if (runs.p50Us > MAIN_MAX_P50_US) return { thread: 'worker', reason: `${measured}: p50 over ${fmt(MAIN_MAX_P50_US)}, the run costs more than the hand-off; kept off the agent's thread` };
  if (runs.worstUs > MAIN_MAX_WORST_US) return { thread: 'worker', reason: `${measured}: worst over ${fmt(MAIN_MAX_WORST_US)}, slow runs would block the agent; kept off the agent's thread` };
  return { thread: 'main', reason: `${measured}: under ${fmt(MAIN_MAX_P50_US)} / ${fmt(MAIN_MAX_WORST_US)}, cheaper than the hand-off to a worker; moved to the agent's thread` };
}

/** A model too large to be moved (decided at load, nothing timed). */
export function tooLargeToMove(modelBytes: number): string | undefined {
  if (modelBytes <= MAIN_MAX_MODEL_BYTES) return undefined;
  return `model file ${(modelBytes / 1048576).toFixed(1)} MB over ${MAIN_MAX_MODEL_BYTES / 1048576} MB: stays in the worker (a second session would be loaded on the agent's thread to move it)`;
}

function round(us: number): number {
  return Math.round(us * 10) / 10;
}

function fmt(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(us >= 10_000 ? 0 : 1)} ms` : `${Math.round(us)} µs`;
}
