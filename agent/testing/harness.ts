// Test-only helpers for the agent's tests: a real HTTP artifact server (Range, throttling, tampering,
// oversized answers), signing (root → key list → manifests naming a device), real bundles built with
// onnxruntime, the agent as a child process, and polling. Nothing in the agent imports this file, and
// it imports nothing from server/ (tests that need the control plane import it themselves).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { buildBundle } from '../../firmware-bundles/builder.ts';
import type { SignedEnvelope } from '../../firmware-bundles/envelope.ts';
import { createKeyList, rotateKeyList, signKeyList, type KeyList } from '../../firmware-bundles/key-list.ts';
import { generateKeyPair, type KeyPair } from '../../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../../firmware-bundles/load-definition.ts';
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { createManifest, signManifest, type AgentConfig, type DeploymentManifest } from '../../firmware-bundles/manifest.ts';
import type { DesiredMessage } from '../../protocol/messages/desired.ts';

export const REPO = path.resolve(import.meta.dirname, '..', '..');

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Polls until `fn` returns a truthy value; fails after `timeoutMs` with `what` in the message. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** How the artifact server misbehaves for one file. */
export interface ArtifactBehaviour {
  /** Flip one byte (same size): tampering. */
  tamper?: boolean;
  /** Append this many bytes (the server sends more than the manifest signed). */
  extraBytes?: number;
  /** Send without Content-Length (chunked), so only the agent's streaming cap can stop it. */
  chunked?: boolean;
  /** Throttle to about this many bytes per second. */
  bytesPerSecond?: number;
  /** The next `times` requests send `afterBytes` bytes and then drop the connection. */
  cut?: { afterBytes: number; times: number };
  /** The next `times` requests send `afterBytes` bytes and then go silent (connection left open). */
  stall?: { afterBytes: number; times: number };
  /** Answer 200 with the whole file even when a Range was asked for. */
  ignoreRange?: boolean;
  /** The next `times` requests get this HTTP status (and this JSON body: an `{error}` of the control plane). */
  fail?: { status: number; times: number; json?: unknown };
  /** The next `times` requests are dropped before any answer (the socket destroyed): a reset. */
  reset?: { times: number };
  /** The next `times` requests are answered only after `ms` (a starved server's accept queue). */
  answerAfter?: { ms: number; times: number };
}

export interface ArtifactRequest {
  sha256: string;
  range: string | null;
  start: number;
  auth: string | null;
}

/** A small artifact server: GET /artifacts/sha256/<hex> with Range (206 + Content-Range). */
export class ArtifactServer {
  private server?: Server;
  private readonly files = new Map<string, Buffer>();
  private readonly behaviour = new Map<string, ArtifactBehaviour>();
  readonly requests: ArtifactRequest[] = [];
  /** Held requests answered later: counted once, when they came. */
  private readonly replayed = new WeakSet<object>();
  url = '';

  add(bytes: Uint8Array, behaviour?: ArtifactBehaviour): { sha256: string; size: number } {
    const hex = sha256(bytes);
    this.files.set(hex, Buffer.from(bytes));
    if (behaviour) this.behaviour.set(hex, behaviour);
    return { sha256: hex, size: bytes.length };
  }

  /** Serves `bytes` under another file's hash (what a compromised server would do). */
  serveAs(hex: string, bytes: Uint8Array, behaviour?: ArtifactBehaviour): void {
    this.files.set(hex, Buffer.from(bytes));
    if (behaviour) this.behaviour.set(hex, behaviour);
  }

  setBehaviour(hex: string, behaviour: ArtifactBehaviour): void {
    this.behaviour.set(hex, behaviour);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const m = /^\/artifacts\/sha256\/([0-9a-f]{64})$/.exec(req.url ?? '');
      const file = m ? this.files.get(m[1]) : undefined;
      const range = req.headers.range ?? null;
      const start = range ? Number(/^bytes=(\d+)-$/.exec(range)?.[1] ?? 0) : 0;
      if (m && !this.replayed.has(req)) this.requests.push({ sha256: m[1], range, start, auth: req.headers.authorization ?? null });
      if (!m || !file) {
        res.writeHead(404).end();
        return;
      }
      const b = this.behaviour.get(m[1]) ?? {};
      if (b.reset && b.reset.times > 0) {
        b.reset.times--;
        req.socket.destroy();
        return;
      }
      if (b.answerAfter && b.answerAfter.times > 0) {
        const { ms } = b.answerAfter;
        b.answerAfter.times--;
        // Then handled as if it came now (the same behaviour minus this hold), unless the client left first.
        const timer = setTimeout(() => {
          this.replayed.add(req);
          if (!res.destroyed) this.server!.emit('request', req, res);
        }, ms);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      if (b.fail && b.fail.times > 0) {
        b.fail.times--;
        if (b.fail.json === undefined) res.writeHead(b.fail.status).end();
        else res.writeHead(b.fail.status, { 'content-type': 'application/json' }).end(JSON.stringify(b.fail.json));
        return;
      }
      let body = Buffer.from(file);
      if (b.tamper) body[Math.floor(body.length / 2)] ^= 0xff;
      if (b.extraBytes) body = Buffer.concat([body, Buffer.alloc(b.extraBytes, 0x41)]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      const ranged = range !== null && !b.ignoreRange;
      const slice = body.subarray(ranged ? start : 0);
      const headers: Record<string, string> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
      if (!b.chunked) headers['content-length'] = String(slice.length);
      if (ranged) headers['content-range'] = `bytes ${start}-${body.length - 1}/${b.chunked ? '*' : body.length}`;
      res.writeHead(ranged ? 206 : 200, headers);
      if (b.cut && b.cut.times > 0) {
        b.cut.times--;
        res.write(slice.subarray(0, b.cut.afterBytes), () => setTimeout(() => res.destroy(), 100));
        return;
      }
      if (b.stall && b.stall.times > 0) {
        b.stall.times--;
        res.write(slice.subarray(0, b.stall.afterBytes));
        return; // the client gives up; stop() closes the socket
      }
      if (!b.bytesPerSecond) {
        res.end(slice);
        return;
      }
      // Throttled: small chunks on a timer, stopped when the client goes away.
      const chunk = Math.max(1, Math.floor(b.bytesPerSecond / 20));
      let at = 0;
      const timer = setInterval(() => {
        if (res.destroyed) return clearInterval(timer);
        const next = slice.subarray(at, at + chunk);
        at += next.length;
        if (at >= slice.length) {
          clearInterval(timer);
          res.end(next);
        } else res.write(next);
      }, 50);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => (this.server ? this.server.close(r) : r(null)));
  }
}

/** A built bundle: its files with their content addresses (`smoke` when the vectors went to smoke.bin). */
export interface TestBundle {
  model: { bytes: Uint8Array; sha256: string; size: number };
  bundleJson: { bytes: Uint8Array; sha256: string; size: number };
  smoke?: { bytes: Uint8Array; sha256: string; size: number };
}

/**
 * Builds a real bundle from one of the demo definitions (firmware-bundles' builder records the smoke
 * vectors with onnxruntime).
 */
export async function buildTestBundle(modelBytes: Uint8Array, demo: 'tabular-demo' | 'image-demo' = 'tabular-demo', o: { reference?: BundleDefinition['reference'] } = {}): Promise<TestBundle> {
  const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', demo, 'bundle.json'));
  const built = await buildBundle({ definition: o.reference ? { ...definition, reference: o.reference } : definition, labels, modelBytes });
  const get = (p: string) => {
    const f = built.files.find((x) => x.path === p);
    return f && { bytes: f.bytes, sha256: f.sha256, size: f.size };
  };
  const smoke = get('smoke.bin');
  return { model: get('model.onnx')!, bundleJson: get('bundle.json')!, ...(smoke && { smoke }) };
}

/** A root, release key, outsider key and key list v1 — what `flotilla keys init` would make. */
export class TestTrust {
  readonly root: KeyPair = generateKeyPair();
  release: KeyPair = generateKeyPair();
  readonly outsider: KeyPair = generateKeyPair();
  keylist: KeyList;
  keylistEnvelope: SignedEnvelope<KeyList>;

  constructor() {
    this.keylist = createKeyList({ version: 1, root: this.root, keys: [this.release], expiresAt: new Date(Date.now() + 365 * 86_400_000), now: new Date(Date.now() - 60_000) });
    this.keylistEnvelope = signKeyList(this.keylist, this.root.privateKeyPem);
  }

  /** Key rotation: key list version + 1 with a new release key, the old one retired. Returns the old key. */
  rotate(): KeyPair {
    const old = this.release;
    this.release = generateKeyPair();
    this.keylist = rotateKeyList(this.keylist, { add: [this.release], retire: [old.keyid], expiresAt: new Date(Date.now() + 365 * 86_400_000) });
    this.keylistEnvelope = signKeyList(this.keylist, this.root.privateKeyPem);
    return old;
  }

  /** The root as `--trust-root` takes it (base64 of the raw key). */
  get rootArg(): string {
    return this.root.publicKey;
  }

  /** A signed manifest for `deviceId` naming the bundle's files. */
  manifest(
    deviceId: string,
    files: Array<{ path: string; sha256: string; size: number }>,
    o: { counter: number; bundleId?: string; name?: string; version?: number; signer?: KeyPair; expiresAt?: Date; now?: Date; minAgentVersion?: string; agentConfig?: AgentConfig },
  ): SignedEnvelope<DeploymentManifest> {
    const payload = createManifest({
      deviceId,
      bundle: { id: o.bundleId ?? `bnd_${o.counter}`, name: o.name ?? 'tabular-demo', model: { name: o.name ?? 'tabular-demo', version: o.version ?? o.counter } },
      files,
      minAgentVersion: o.minAgentVersion ?? '0.1.0',
      counter: o.counter,
      keylistVersion: this.keylist.version,
      expiresAt: o.expiresAt ?? new Date(Date.now() + 86_400_000),
      now: o.now ?? new Date(Date.now() - 1000),
      agentConfig: o.agentConfig,
    });
    return signManifest(payload, [{ privateKeyPem: (o.signer ?? this.release).privateKeyPem }]);
  }

  /** The manifest of a built bundle. */
  bundleManifest(deviceId: string, bundle: TestBundle, o: Parameters<TestTrust['manifest']>[2]): SignedEnvelope<DeploymentManifest> {
    return this.manifest(
      deviceId,
      [
        { path: 'model.onnx', sha256: bundle.model.sha256, size: bundle.model.size },
        { path: 'bundle.json', sha256: bundle.bundleJson.sha256, size: bundle.bundleJson.size },
        ...(bundle.smoke ? [{ path: 'smoke.bin', sha256: bundle.smoke.sha256, size: bundle.smoke.size }] : []),
      ],
      o,
    );
  }

  desired(manifest: SignedEnvelope<DeploymentManifest> | null, keylistEnvelope: SignedEnvelope<KeyList> = this.keylistEnvelope): DesiredMessage {
    return { v: 1, keylist: keylistEnvelope as unknown as DesiredMessage['keylist'], manifest: manifest as unknown as DesiredMessage['manifest'] };
  }
}

/** The agent as a child process (`bin/flotilla-agent.js ...`, the file itself), output kept for diagnostics. */
export class AgentProcess {
  child?: ChildProcess;
  output = '';
  exit?: Promise<number | null>;

  constructor(
    readonly args: string[],
    readonly env: Record<string, string> = {},
  ) {}

  start(): this {
    this.output = '';
    // The bin file itself, as a gateway runs it: its shebang carries the agent's node options.
    const child = spawn(path.join(REPO, 'bin', 'flotilla-agent.js'), this.args, {
      cwd: REPO,
      env: { ...process.env, FLOTILLA_AGENT_LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-200_000)));
    child.stderr!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-200_000)));
    this.exit = new Promise((r) => child.on('exit', (code) => r(code)));
    this.child = child;
    return this;
  }

  /** kill -9 and wait for the process to be gone. */
  async kill9(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exit;
  }

  /** SIGTERM (clean stop), bounded; kill -9 if it hangs. */
  async stop(timeoutMs = 10_000): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.child?.exitCode ?? null;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    const code = await this.exit!;
    clearTimeout(timer);
    return code;
  }
}

/** GET/POST against the agent's local API. */
export async function api(port: number, method: string, pathname: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body instanceof Uint8Array) init.body = body as unknown as BodyInit;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: res.status, body: parsed as any };
}
