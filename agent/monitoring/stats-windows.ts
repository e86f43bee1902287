// The `stats` windows of one device: one FeatureSetSketch per window, on the active bundle's layout.
// Windows sit on wall-clock multiples of their length ([k·W, (k+1)·W)), so a 60 s window is a
// minute and lands in one server rollup bucket; a window belongs to one bundle, so a swap cuts it
// (the old window ends at the swap, the next one starts there). Times are passed in (ms), which
// keeps this free of timers and clocks: StatsCollector drives it.
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { createFeatureSetSketch, type FeatureSetSketch, type SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';
import { sampleSpecOf, sketchSample, type SampleSpec, type StatsSample } from './stats-sample.ts';

/** The bundle whose requests are being sketched. */
export interface StatsBundle {
  id: string;
  model: { name: string; version: number };
  definition: BundleDefinition;
  layout: SketchLayout;
}

/** A finished window: everything a `stats` message holds but the device id and `seq`. */
export interface ClosedWindow {
  bundleId: string;
  model: { name: string; version: number };
  layout: SketchLayout;
  windowStart: string;
  windowEnd: string;
  sketch: FeatureSetSketch;
}

interface OpenWindow {
  bundle: StatsBundle;
  start: number;
  sketch: FeatureSetSketch;
}

export class StatsWindows {
  private bundle: StatsBundle | null = null;
  private spec: SampleSpec | null = null;
  private open: OpenWindow | null = null;
  /** A window never starts before the last cut (a swap, or the previous window's end). */
  private cutAt = 0;

  constructor(private windowMs: number) {}

  get current(): StatsBundle | null {
    return this.bundle;
  }

  /** Start of the window holding `t` on the wall-clock grid. */
  windowStartOf(t: number): number {
    return Math.floor(t / this.windowMs) * this.windowMs;
  }

  /** End of the window holding `t`. */
  windowEndOf(t: number): number {
    return this.windowStartOf(t) + this.windowMs;
  }

  /** Another window length: the open window ends now (returned), the next ones follow the new grid. */
  setWindowMs(ms: number, now: number): ClosedWindow | null {
    if (ms === this.windowMs) return null;
    const closed = this.close(now);
    this.windowMs = ms;
    return closed;
  }

  /** The bundle now serving (null: none, or one without statistics). A different one cuts the window. */
  setBundle(bundle: StatsBundle | null, now: number): ClosedWindow | null {
    const same = bundle !== null && this.bundle !== null && bundle.id === this.bundle.id && bundle.model.name === this.bundle.model.name && bundle.model.version === this.bundle.model.version && JSON.stringify(bundle.layout) === JSON.stringify(this.bundle.layout);
    if (same) {
      this.bundle = bundle; // e.g. a re-signed manifest: same statistics, nothing to cut
      return null;
    }
    const closed = this.close(now);
    this.bundle = bundle;
    this.spec = bundle ? sampleSpecOf(bundle.definition, bundle.layout.outputs.task) : null;
    return closed;
  }

  /**
   * Sketches a sample taken at `at`. Returns the rows added, or -1 when the sample is not for the
   * current bundle (a request that was still running on the old bundle when it was swapped out).
   */
  add(sample: StatsSample, at: number): number {
    const bundle = this.bundle;
    if (!bundle || !this.spec || sample.bundleId !== bundle.id) return -1;
    if (!this.open) this.open = { bundle, start: Math.max(this.windowStartOf(at), this.cutAt), sketch: createFeatureSetSketch(bundle.layout) };
    return sketchSample(this.open.sketch, this.spec, sample);
  }

  /** Ends the open window at `end`; returns it if it holds at least one row. */
  close(end: number): ClosedWindow | null {
    const w = this.open;
    this.open = null;
    this.cutAt = Math.max(this.cutAt, end);
    if (!w || w.sketch.quality.rows === 0) return null;
    const stop = Math.max(end, w.start + 1); // the wire wants end > start
    return { bundleId: w.bundle.id, model: w.bundle.model, layout: w.bundle.layout, windowStart: new Date(w.start).toISOString(), windowEnd: new Date(stop).toISOString(), sketch: w.sketch };
  }

  /** Rows in the open window so far. */
  get openRows(): number {
    return this.open?.sketch.quality.rows ?? 0;
  }
}
