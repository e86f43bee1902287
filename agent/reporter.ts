// Keeps the device's `reported` document (retained) and publishes it: on every transition, on
// throttled download progress, and again after each reconnect. While offline only the newest
// document matters, so nothing is queued: the latest one is sent once the session is back.
import type { Logger } from 'pino';
import { TERMINAL_STATES, type BundleRef, type ReportedMessage, type UpdateState } from '../protocol/messages/reported.ts';
import { AGENT_CAPABILITIES, type ShadowReport } from '../protocol/messages/shadow.ts';
import type { AgentState, StateStore, Transition } from './state-store.ts';

export interface ReportPublisher {
  readonly connected: boolean;
  publish(channel: 'reported', message: unknown, o: { retain?: boolean }): Promise<boolean>;
}

export class Reporter {
  private state: UpdateState = 'idle';
  private active: ReportedMessage['active'] = null;
  private desired: ReportedMessage['desired'] = null;
  private progress: ReportedMessage['progress'];
  private downloadWaitUntil: string | undefined;
  private shadow: ShadowReport | null = null;
  private lastProgressAt = 0;
  private session?: ReportPublisher;
  private dirty = false;
  private sending = false;

  constructor(
    private readonly store: StateStore,
    private readonly agentVersion: string,
    private readonly logger: Logger,
    private readonly progressIntervalMs = 1000,
  ) {}

  attach(session: ReportPublisher): void {
    this.session = session;
  }

  get current(): UpdateState {
    return this.state;
  }

  /** The desired bundle this device accepted last (its manifest verified), without building a snapshot. */
  get desiredCounter(): number | null {
    return this.desired?.counter ?? null;
  }

  /** The document as it would be published now. */
  snapshot(): ReportedMessage {
    const s = this.store.get();
    return {
      v: 1,
      at: new Date().toISOString(),
      agentVersion: this.agentVersion,
      state: this.state,
      active: this.active,
      desired: this.desired,
      ...(this.progress ? { progress: this.progress } : {}),
      ...(this.downloadWaitUntil ? { downloadWaitUntil: this.downloadWaitUntil } : {}),
      lastError: s.lastError,
      transitions: s.transitions.slice(-50),
      ...(s.keylist ? { keylistVersion: (s.keylist.signed as { version?: number }).version ?? 0 } : {}),
      highestCounter: Math.max(s.highWaterCounter, this.active?.counter ?? 0),
      capabilities: [...AGENT_CAPABILITIES],
      ...(this.shadow ? { shadow: this.shadow } : {}),
    };
  }

  /** After a restart: the state to show without recording a transition (the last terminal one, or idle/active). */
  restore(state: UpdateState, desired: ReportedMessage['desired']): void {
    this.state = state;
    this.desired = desired;
  }

  setActive(active: (BundleRef & { activatedAt: string }) | null): void {
    this.active = active;
    this.flush();
  }

  /** The shadow evaluation's latest figures (null: none running); published with the document. */
  setShadow(shadow: ShadowReport | null): void {
    if (shadow === null && this.shadow === null) return;
    this.shadow = shadow;
    this.flush();
  }

  /**
   * Records a transition (persisted with the state, so the history survives restarts: a terminal one
   * before this returns, an intermediate one with the next write) and publishes.
   * A failure carries its reason code and message as `lastError`; `downloadWaitUntil` marks a
   * `downloading` that waits out its splay (until the next transition).
   */
  async transition(state: UpdateState, o: { counter?: number; bundleId?: string; reason?: string; message?: string; error?: boolean; downloadWaitUntil?: string } = {}): Promise<void> {
    const at = new Date().toISOString();
    this.state = state;
    if (o.counter !== undefined && o.bundleId !== undefined) this.desired = { bundleId: o.bundleId, counter: o.counter };
    if (state !== 'downloading') this.progress = undefined;
    this.downloadWaitUntil = o.downloadWaitUntil;
    const t: Transition = { state, at, ...(o.counter !== undefined ? { counter: o.counter } : {}), ...(o.reason ? { reason: o.reason } : {}) };
    const record = (s: AgentState) => {
      s.transitions.push(t);
      if ((state === 'failed' || state === 'rolled_back') && o.reason && o.error !== false) {
        s.lastError = { code: o.reason, message: (o.message ?? o.reason).slice(0, 2000), at, ...(o.counter !== undefined ? { counter: o.counter } : {}) };
      }
    };
    // An update's intermediate phases ride with the next write (a restart starts the update over and
    // reports from its last terminal state); the outcome is on disk before this returns.
    if (TERMINAL_STATES.has(state)) await this.store.update(record);
    else this.store.note(record);
    this.logger.info({ state, counter: o.counter, reason: o.reason }, o.message && o.reason ? `update ${state}: ${o.message}` : `update ${state}`);
    this.flush();
  }

  /** Download progress; published at most once per interval. */
  setProgress(bytes: number, totalBytes: number): void {
    this.progress = { bytes, totalBytes };
    const now = Date.now();
    if (now - this.lastProgressAt >= this.progressIntervalMs) {
      this.lastProgressAt = now;
      this.flush();
    }
  }

  /**
   * Publishes the newest document if connected (otherwise remembers to do so on reconnect), once the
   * current turn of the event loop is over: the changes one message makes (a desired message's key list,
   * then its verdict's transition) go out as one document. Sent at once, the first change took a publish
   * of its own and the second waited for its acknowledgement: two `reported` messages per device in a
   * fan-out, twice the devices' publishes and the server's handling of them.
   */
  flush(): void {
    this.dirty = true;
    if (this.sending || !this.session?.connected) return;
    this.sending = true;
    setImmediate(() => void this.send());
  }

  private async send(): Promise<void> {
    try {
      while (this.dirty && this.session?.connected) {
        this.dirty = false;
        await this.session.publish('reported', this.snapshot(), { retain: true });
      }
    } finally {
      this.sending = false;
    }
  }
}
