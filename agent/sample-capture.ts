// Opt-in sample capture: while the verified manifest's `agentConfig.sampleCapture` is enabled (never by
// default), request inputs and the model's answers are kept and uploaded to the control plane in
// batches (`POST /api/v1/devices/{id}/samples`, HTTP Basic with the device credentials), for retraining.
//
// On the request path `offer` only takes a token (at most maxPerMinute per minute, a minute's burst)
// and queues references to what the request already allocated; naming tabular rows, base64 of image
// bytes and validation happen at upload time. The queue is bounded in samples and bytes; whatever
// does not fit, is over the rate, cannot be sent (raw tensors, WebP images, >1 MiB) or is refused by
// the server (4xx) is dropped and counted. 5xx and network failures are retried with backoff, 429
// after its Retry-After. A manifest that turns capture off (or moves to another bundle) drops what is
// queued: the server would refuse it.
//
// With `storeDir` (the agent: <dataDir>/samples-outbox/) every batch, once formed, is written to a
// bounded on-disk outbox (monitoring/outbox.ts, its own directory and byte limit; the oldest batches
// go first when full) and uploaded from there, oldest first, deleted once the server answered. So
// batches survive a restart (same sampleIds: a resend is deduped) and a clean stop writes what is
// still queued in memory as a last partial batch; a kill -9 loses at most the samples of the last
// flush interval. Stored batches of another model than the one capture now runs are dropped when
// their turn comes. Without `storeDir` (unit tests) batches are uploaded straight from memory.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { MAX_SAMPLE_IMAGE_BYTES, Sample, SampleBatch, type SampleOutputs } from '../protocol/messages/samples.ts';
import { Backoff, sleep } from './backoff.ts';
import { httpClient, type HttpFetch } from './http-client.ts';
import type { InstalledBundle } from './bundle-store.ts';
import { Outbox } from './monitoring/outbox.ts';
import type { PredictionEvent } from './model-runtime.ts';
import type { BundleDefinition } from '../firmware-bundles/definition.ts';

/** One captured request row or image, as the request left it. */
export interface CaptureOffer {
  /** A tabular row (object by feature name, or array in feature order) or one image (bytes or base64). */
  inputs: unknown;
  outputs: SampleOutputs;
  predictionId?: string;
}

/** The serving bundle: its verified manifest (`agentConfig.sampleCapture`; absent or disabled = off) and definition. */
export type CaptureTarget = Pick<InstalledBundle, 'manifest' | 'definition'>;

export interface SampleCaptureOptions {
  serverUrl: string;
  deviceId: string;
  secret: string;
  logger: Logger;
  /** A partial batch is sent after this long (default 10 s). */
  flushIntervalMs?: number;
  /** Queue bound in approximate bytes (default 16 MiB); the sample bound is 10 batches. */
  maxQueuedBytes?: number;
  backoff?: { minMs: number; maxMs: number };
  now?: () => number;
  /** Directory of the on-disk batch queue (see the file comment); memory only without it. */
  storeDir?: string;
  /** Bound of that queue in bytes (default 64 MiB). */
  maxStoredBytes?: number;
  /** The HTTP client to use (pinned to the device's CA); default one with the system's CAs. */
  fetch?: HttpFetch;
}

type DropReason = 'rate' | 'queue_full' | 'too_large' | 'unsupported' | 'rejected' | 'disabled';

interface Queued {
  offer: CaptureOffer;
  at: string;
  bytes: number;
}

interface Active {
  bundleId: string;
  model: { name: string; version: number };
  featureNames: readonly string[];
  task: BundleDefinition['postprocess']['task'];
  maxPerMinute: number;
  batchSize: number;
}

const ROW_BYTES = 256;
const MAX_RETRY_AFTER_MS = 5 * 60_000;
/** Without a client given (tests), the system's CAs. */
const defaultClient = httpClient();
const MAX_IMAGE_B64 = Math.ceil(MAX_SAMPLE_IMAGE_BYTES / 3) * 4 + 4;

export class SampleCapture {
  private active: Active | null = null;
  private tokens = 0;
  private tokensAt = 0;
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private uploading: Promise<void> | null = null;
  private ctl = new AbortController();
  private timer?: NodeJS.Timeout;
  private store?: Outbox<'samples'>;
  private stopping = false;
  private readonly now: () => number;
  private readonly backoff: Backoff;
  readonly counts = { captured: 0, uploaded: 0, duplicates: 0, batches: 0, dropped: { rate: 0, queue_full: 0, too_large: 0, unsupported: 0, rejected: 0, disabled: 0 } as Record<DropReason, number> };

  constructor(private readonly o: SampleCaptureOptions) {
    this.now = o.now ?? Date.now;
    this.backoff = new Backoff(o.backoff ?? { minMs: 1000, maxMs: 60_000 });
  }

  get enabled(): boolean {
    return this.active !== null;
  }

  /** Starts the flush timer; with `storeDir`, reads the batches a previous run left and sends them once capture is on. */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.kick(true), this.o.flushIntervalMs ?? 10_000);
    this.timer.unref();
    if (!this.o.storeDir) return;
    const store = new Outbox<'samples'>({
      dir: this.o.storeDir,
      maxBytes: this.o.maxStoredBytes ?? 64 * 1024 * 1024,
      channels: ['samples'],
      logger: this.o.logger,
      // The upload retries itself (backoff, Retry-After) until answered or aborted by stop/settings.
      publishTimeoutMs: 24 * 3600_000,
      retryMs: 1000,
    });
    await store.init();
    this.store = store;
    const self = this;
    store.attach({
      get connected() {
        return self.active !== null && !self.stopping;
      },
      publish: (_channel, message) => this.sendStored(message),
    });
  }

  /** Stops uploading. With a store, what is still queued in memory is written to it first (sent after the next start). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.store) {
      await this.uploading;
      while (this.active && this.queue.length) {
        this.kick(true);
        if (!this.uploading) break;
        await this.uploading;
      }
      this.stopping = true;
      this.ctl.abort(new Error('sample capture stopping'));
      await this.store.stop();
    } else {
      this.stopping = true;
      this.ctl.abort(new Error('sample capture stopping'));
      await this.uploading;
    }
    this.queue = [];
    this.queuedBytes = 0;
  }

  /** Applies the serving bundle's signed settings (boot, activation, rollback, re-signed manifest). */
  configure(t: CaptureTarget): void {
    const c = t.manifest.agentConfig?.sampleCapture;
    const { id: bundleId, model } = t.manifest.bundle;
    const previous = this.active;
    if (!c?.enabled) {
      if (previous) this.o.logger.info('sample capture off');
      this.active = null;
      this.discardQueued();
      // Stored batches too: the server refuses samples while capture is off.
      void this.store?.clear().then((n) => this.drop('disabled', n));
      return;
    }
    const pre = t.definition.preprocess;
    this.active = {
      bundleId,
      model,
      featureNames: pre.type === 'tabular' ? pre.features.map((f) => f.name) : [],
      task: t.definition.postprocess.task,
      maxPerMinute: c.maxPerMinute,
      batchSize: c.batchSize,
    };
    const sameModel = previous && previous.model.name === model.name && previous.model.version === model.version;
    if (!sameModel) {
      // Samples of another model version would be refused by the server (409).
      this.discardQueued();
      this.tokens = c.maxPerMinute;
      this.tokensAt = this.now();
      this.o.logger.info({ model: `${model.name}@${model.version}`, maxPerMinute: c.maxPerMinute, batchSize: c.batchSize }, 'sample capture on');
    } else {
      this.tokens = Math.min(this.tokens, c.maxPerMinute);
    }
    this.store?.kick();
  }

  /** Queues one row or image if capture is on, the rate allows it and the queue has room. O(1). */
  offer(offer: CaptureOffer): boolean {
    const a = this.active;
    if (!a) return false;
    const now = this.now();
    this.tokens = Math.min(a.maxPerMinute, this.tokens + ((now - this.tokensAt) * a.maxPerMinute) / 60_000);
    this.tokensAt = now;
    // An image over the sample cap could never be sent: refused before it costs a token.
    if (offer.inputs instanceof Uint8Array ? offer.inputs.byteLength > MAX_SAMPLE_IMAGE_BYTES : typeof offer.inputs === 'string' && offer.inputs.length > MAX_IMAGE_B64) return this.drop('too_large');
    if (this.tokens < 1) return this.drop('rate');
    const bytes = offer.inputs instanceof Uint8Array ? offer.inputs.byteLength : typeof offer.inputs === 'string' ? offer.inputs.length : ROW_BYTES;
    if (this.queue.length >= 10 * a.batchSize || this.queuedBytes + bytes > (this.o.maxQueuedBytes ?? 16 * 1024 * 1024)) return this.drop('queue_full');
    this.tokens -= 1;
    this.queue.push({ offer, at: new Date(now).toISOString(), bytes });
    this.queuedBytes += bytes;
    this.counts.captured++;
    if (this.queue.length >= a.batchSize) this.kick(false);
    return true;
  }

  /**
   * Offers every row (or image) of a finished request, stopping at the first one refused, so a large
   * batch request costs at most the rows actually kept. A `predictionId` given with the request names
   * a single row as is and the rows of a batch as `<id>#<row>`.
   */
  offerPrediction(e: PredictionEvent): void {
    const a = this.active;
    if (!a || !e.ok || !e.rows || e.bundle.id !== a.bundleId) return;
    const input = e.input as Record<string, unknown>;
    const items = 'image' in input ? input.image : 'features' in input ? input.features : undefined;
    if (items === undefined) return; // raw tensors: nothing a trainer can read back
    const batch = Array.isArray(items) && ('image' in input || items.some((r) => r !== null && typeof r === 'object'));
    const rows = batch ? (items as unknown[]) : [items];
    const id = typeof input.predictionId === 'string' ? input.predictionId : undefined;
    for (let i = 0; i < rows.length && i < e.rows.length; i++) {
      const top = e.rows[i][0];
      if (!top) continue;
      const outputs: SampleOutputs =
        a.task === 'regression'
          ? Number.isFinite(top.score) ? { value: top.score } : {}
          : { predictedClass: top.label, ...(top.score >= 0 && top.score <= 1 ? { confidence: top.score } : {}) };
      if (!this.offer({ inputs: rows[i], outputs, predictionId: id === undefined ? undefined : batch ? `${id}#${i}` : id })) return;
    }
  }

  private drop(reason: DropReason, n = 1): false {
    this.counts.dropped[reason] += n;
    return false;
  }

  private discardQueued(): void {
    this.drop('disabled', this.queue.length);
    this.queue = [];
    this.queuedBytes = 0;
    // An upload in flight belongs to the old settings: stop it (its samples count as dropped there).
    this.ctl.abort(new Error('capture settings changed'));
    this.ctl = new AbortController();
  }

  /** Starts the upload loop unless it runs; `partial` also sends a batch that is not full yet. */
  private kick(partial: boolean): void {
    if (this.uploading || !this.active || this.queue.length === 0 || (this.stopping && !this.store)) return;
    if (!partial && this.queue.length < this.active.batchSize) return;
    this.uploading = this.drain(partial)
      .catch((err) => this.o.logger.warn({ err: (err as Error).message }, 'sample upload loop failed'))
      .finally(() => (this.uploading = null));
  }

  private async drain(partial: boolean): Promise<void> {
    for (;;) {
      const a = this.active;
      if (!a || this.queue.length === 0 || (!partial && this.queue.length < a.batchSize)) return;
      partial = false;
      const taken = this.queue.splice(0, a.batchSize);
      for (const q of taken) this.queuedBytes -= q.bytes;
      const signal = this.ctl.signal; // the settings this batch was taken under
      // Encoding (base64 of images, validation) happens off the request that offered the sample.
      await new Promise((r) => setImmediate(r));
      if (signal.aborted && !this.stopping) {
        this.drop('disabled', taken.length);
        continue;
      }
      const samples: Sample[] = [];
      for (const q of taken) {
        const s = toSample(q, a);
        if (s) samples.push(s);
        else this.drop('unsupported');
      }
      if (!samples.length) continue;
      const body: SampleBatch = { v: 1, deviceId: this.o.deviceId, bundleId: a.bundleId, model: a.model, samples };
      if (this.store) await this.store.append('samples', body);
      else if ((await this.upload(body, signal)) === 'aborted') this.drop('disabled', samples.length);
    }
  }

  /** The store's publisher: true once the batch is done with (sent, refused, or not for this model), false to keep it. */
  private async sendStored(message: unknown): Promise<boolean> {
    const parsed = SampleBatch.safeParse(message);
    if (!parsed.success) {
      this.drop('unsupported');
      return true;
    }
    const body = parsed.data;
    const a = this.active;
    if (!a || body.deviceId !== this.o.deviceId || body.model.name !== a.model.name || body.model.version !== a.model.version) {
      this.drop('disabled', body.samples.length);
      return true;
    }
    if ((await this.upload(body, this.ctl.signal)) === 'done') return true;
    if (this.stopping) return false; // stays on disk for the next start
    this.drop('disabled', body.samples.length); // settings changed meanwhile
    return true;
  }

  /** Posts one batch until the server answered it ('done': accepted or refused) or the signal aborts. */
  private async upload(body: SampleBatch, signal: AbortSignal): Promise<'done' | 'aborted'> {
    const samples = body.samples;
    const url = `${this.o.serverUrl.replace(/\/$/, '')}/api/v1/devices/${this.o.deviceId}/samples`;
    const authorization = 'Basic ' + Buffer.from(`${this.o.deviceId}:${this.o.secret}`).toString('base64');
    const payload = JSON.stringify(body);
    for (;;) {
      let wait: number;
      try {
        const res = await (this.o.fetch ?? defaultClient)(url, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: payload, signal });
        const text = await res.text();
        if (res.ok) {
          const r = JSON.parse(text) as { accepted: number; duplicates: number };
          this.counts.uploaded += r.accepted;
          this.counts.duplicates += r.duplicates;
          this.counts.batches++;
          this.backoff.reset();
          return 'done';
        }
        if (res.status === 429) {
          wait = Math.min(MAX_RETRY_AFTER_MS, Math.max(1, Number(res.headers.get('retry-after')) || 1) * 1000);
        } else if (res.status < 500) {
          this.drop('rejected', samples.length);
          this.o.logger.warn({ status: res.status, body: text.slice(0, 300) }, 'server refused a sample batch; dropped');
          return 'done';
        } else wait = this.backoff.next();
      } catch (err) {
        if (signal.aborted) return 'aborted';
        wait = this.backoff.next();
        this.o.logger.debug({ err: (err as Error).message, retryInMs: wait }, 'sample upload failed; retrying');
      }
      try {
        await sleep(wait, signal);
      } catch {
        return 'aborted';
      }
    }
  }

  /** What GET /v1/status shows. */
  status() {
    const a = this.active;
    return {
      enabled: a !== null,
      ...(a ? { model: `${a.model.name}@${a.model.version}`, maxPerMinute: a.maxPerMinute, batchSize: a.batchSize } : {}),
      queued: this.queue.length,
      ...(this.store ? { stored: { batches: this.store.pending, bytes: this.store.pendingBytes, droppedFull: this.store.dropped.samples, corrupt: this.store.corrupt } } : {}),
      ...this.counts,
      dropped: { ...this.counts.dropped },
    };
  }
}

const JPEG = [0xff, 0xd8, 0xff];
const PNG = [0x89, 0x50, 0x4e, 0x47];

/** The wire form of a queued row or image, or null when it cannot be sent as a sample. */
function toSample(q: Queued, a: Active): Sample | null {
  const inputs = wireInputs(q.offer.inputs, a.featureNames);
  if (!inputs) return null;
  const s = Sample.safeParse({ sampleId: randomUUID(), at: q.at, ...(q.offer.predictionId ? { predictionId: q.offer.predictionId.slice(0, 200) } : {}), inputs, outputs: q.offer.outputs });
  return s.success ? s.data : null;
}

function wireInputs(v: unknown, featureNames: readonly string[]): Record<string, unknown> | null {
  if (v instanceof Uint8Array) {
    const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return bytes.length <= MAX_SAMPLE_IMAGE_BYTES && isJpegOrPng(bytes) ? { image: bytes.toString('base64') } : null;
  }
  if (typeof v === 'string') {
    const b64 = v.startsWith('data:') ? v.slice(v.indexOf(',') + 1) : v;
    return isJpegOrPng(Buffer.from(b64.slice(0, 16), 'base64')) ? { image: b64 } : null;
  }
  if (Array.isArray(v)) {
    if (v.length !== featureNames.length) return null;
    return scalars(Object.fromEntries(featureNames.map((name, i) => [name, v[i]])));
  }
  return v !== null && typeof v === 'object' ? scalars(v as Record<string, unknown>) : null;
}

/** Keeps the values a sample can carry (finite numbers, strings, booleans, null). */
function scalars(row: Record<string, unknown>): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(row)) {
    if (x === null || typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) out[k] = x;
  }
  return Object.keys(out).length ? out : null;
}

function isJpegOrPng(b: Uint8Array): boolean {
  return JPEG.every((x, i) => b[i] === x) || PNG.every((x, i) => b[i] === x);
}
