// Small persistent state beside the bundles (state.json, atomic writes): the newest verified key list,
// the highest manifest counter ever activated (so a replayed older manifest is refused after a
// restart), manifests already handled (so a retained message redelivered on reconnect is not re-run),
// the probation in progress, and the recent transitions for `reported`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { UPDATE_STATES } from '../protocol/messages/reported.ts';
import { writeJsonAtomic } from './fs-atomic.ts';

export const STATE_FILE = 'state.json';
const MAX_HANDLED = 32;
export const MAX_TRANSITIONS = 50;

const Envelope = z.object({ signed: z.record(z.string(), z.unknown()), signatures: z.array(z.object({ keyid: z.string(), sig: z.string() })) });

export const Transition = z.object({ state: z.enum(UPDATE_STATES), at: z.string(), counter: z.number().int().optional(), reason: z.string().optional() });
export type Transition = z.infer<typeof Transition>;

export const LastError = z.object({ code: z.string(), message: z.string(), at: z.string(), counter: z.number().int().optional() });
export type LastError = z.infer<typeof LastError>;

export const AgentState = z.object({
  v: z.literal(1),
  keylist: Envelope.nullable().default(null),
  /** Highest manifest counter ever activated on this device. */
  highWaterCounter: z.number().int().nonnegative().default(0),
  /** sha256 of the canonical manifest payloads that reached a final verdict (newest last). */
  handled: z.array(z.object({ digest: z.string(), counter: z.number().int(), outcome: z.string() })).default([]),
  /** A probation that was running; after a restart it starts over on the same bundle. */
  probation: z.object({ counter: z.number().int(), dir: z.string() }).nullable().default(null),
  /**
   * Digest of a manifest whose installed bundle broke on disk (found at start): it may be installed
   * again although its counter is not above the floor, since it is the very manifest that was verified.
   */
  reinstall: z.string().nullable().default(null),
  transitions: z.array(Transition).default([]),
  lastError: LastError.nullable().default(null),
  /** Where each monitoring channel's `seq` starts after a restart: the end of the block reserved so far (monitoring.ts SEQ_BLOCK); monotonic per device across restarts (the server dedupes on it). */
  seq: z.object({ stats: z.number().int().nonnegative().default(0), telemetry: z.number().int().nonnegative().default(0) }).default({ stats: 0, telemetry: 0 }),
});
export type AgentState = z.infer<typeof AgentState>;

export class StateStore {
  private state: AgentState = AgentState.parse({ v: 1 });
  /** The write under way, and the next one (not started yet: every change made meanwhile rides in it). */
  private writing: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private readonly file: string;
  /** Times state.json was written (each an atomic replace: temp file, fsync, rename, directory fsync). */
  writes = 0;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, STATE_FILE);
  }

  async load(): Promise<AgentState> {
    try {
      const parsed = AgentState.safeParse(JSON.parse(await readFile(this.file, 'utf8')));
      // A state file we cannot read is not fatal: the bundles on disk still carry their signed
      // manifests, and the counter floor is recomputed from them.
      if (parsed.success) this.state = parsed.data;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    return this.state;
  }

  get(): Readonly<AgentState> {
    return this.state;
  }

  /**
   * Applies a change and persists it: resolves once a write holding it (and every change before it)
   * is on disk. Changes made while a write is under way share the next one.
   */
  async update(change: (s: AgentState) => void): Promise<void> {
    this.apply(change);
    await this.persist();
  }

  /**
   * Applies a change in memory only; it reaches the disk with the next update(). For what a restart
   * can do without (an update's intermediate phases: a restarted agent starts that update over from
   * the retained desired state) — never for what crash safety rests on (key list, probation, verdicts).
   */
  note(change: (s: AgentState) => void): void {
    this.apply(change);
  }

  private apply(change: (s: AgentState) => void): void {
    change(this.state);
    if (this.state.handled.length > MAX_HANDLED) this.state.handled.splice(0, this.state.handled.length - MAX_HANDLED);
    if (this.state.transitions.length > MAX_TRANSITIONS) this.state.transitions.splice(0, this.state.transitions.length - MAX_TRANSITIONS);
  }

  private persist(): Promise<void> {
    if (this.queued) return this.queued;
    const next: Promise<void> = (this.writing ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        // The newest state when the write starts, so it holds every change queued behind the last one.
        this.queued = null;
        this.writing = next;
        this.writes++;
        return writeJsonAtomic(this.file, this.state);
      })
      .finally(() => {
        if (this.writing === next) this.writing = null;
      });
    this.queued = next;
    return next;
  }

  isHandled(digest: string): boolean {
    return this.state.handled.some((h) => h.digest === digest);
  }
}
