// An in-process control plane for the benches that drive the server through its API (fanout,
// rollout-tick): a libsql file and the embedded broker in a temp dir, the drift cron off, and the
// release trust set up — a root key, a release key listed by it, two bundles of a small model (v1, v2).
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair, type KeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { gemmModel } from '../test/helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');

/** `method path` against the plane: JSON (or text) on 2xx, a rejection naming the status otherwise. `auth: false` sends no token. */
export type BenchApi = (method: string, p: string, body?: unknown, raw?: Uint8Array, auth?: boolean) => Promise<any>;

export interface BenchPlane {
  plane: ControlPlane;
  /** The temp dir holding the database and artifacts. */
  dir: string;
  api: BenchApi;
}

/** Starts the plane in a new temp dir (`prefix`); `env` adds to or overrides its settings. */
export async function startBenchPlane(prefix: string, env: Record<string, string> = {}): Promise<BenchPlane> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const config = loadServerConfig({
    FLOTILLA_DATA_DIR: dir,
    FLOTILLA_HTTP_HOST: '127.0.0.1',
    FLOTILLA_HTTP_PORT: String(await freePort()),
    FLOTILLA_MQTT_HOST: '127.0.0.1',
    FLOTILLA_MQTT_PORT: String(await freePort()),
    FLOTILLA_DRIFT_CRON: 'off',
    ...env,
  });
  const plane = new ControlPlane(config, createLogger('silent'));
  await plane.start();
  // A new connection per request (agent: false): a bench's bulk inserts take longer than the server's
  // keep-alive timeout, and a reused idle socket can be reset under the next request.
  const api: BenchApi = (method, p, body, raw, auth = true) =>
    new Promise((resolve, reject) => {
      const payload = raw ?? (body ? Buffer.from(JSON.stringify(body)) : undefined);
      const headers = { ...(auth ? { authorization: `Bearer ${plane.adminToken}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) };
      const req = request(plane.httpUrl + p, { method, agent: false, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode! >= 300) reject(new Error(`${method} ${p}: ${res.statusCode} ${text.slice(0, 500)}`));
          else resolve(res.headers['content-type']?.includes('json') ? JSON.parse(text) : text);
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  return { plane, dir, api };
}

/**
 * Model `model` v1 and v2 (small Gemm models) pushed and bundled with the tabular demo definition, the
 * server's release key listed in a key list signed by a new root: what a deployment or rollout needs.
 */
export async function twoTrustedBundles(api: BenchApi, model: string): Promise<{ root: KeyPair; bundles: [{ id: string; name: string }, { id: string; name: string }] }> {
  await api('POST', `/api/v1/models/${model}/versions`, undefined, gemmModel({ seed: 1 }));
  await api('POST', `/api/v1/models/${model}/versions`, undefined, gemmModel({ seed: 2 }));
  const root = generateKeyPair();
  const release = await api('POST', '/api/v1/keys/release');
  await api('PUT', '/api/v1/keys/keylist', signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem));
  const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
  const bundle = async (version: number) => {
    const b = await api('POST', '/api/v1/bundles', { model: `${model}@${version}`, definition, labels });
    return { id: b.id as string, name: b.name as string };
  };
  return { root, bundles: [await bundle(1), await bundle(2)] };
}
