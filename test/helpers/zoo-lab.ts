// The zoo tests' shared steps (issue 17) over one control plane with one real agent: push, build and
// deploy a bundle, predict through the agent's local API, wait for statistics on the server, and the
// model run directly with onnxruntime in the test process (what the agent must answer).
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { and, eq, sql } from 'drizzle-orm';
import * as ort from 'onnxruntime-node';
import { api, waitFor } from '../../agent/testing/harness.ts';
import { fromFloat16Bits } from '../../firmware-bundles/float16.ts';
import { DEVICE_SESSION_OPTIONS } from '../../firmware-bundles/session-options.ts';
import { models, modelVersions, statsDrops, statsWindows } from '../../server/db/schema.ts';
import type { PlaneWithAgent } from './plane-with-agent.ts';

export type Feeds = Record<string, ort.Tensor>;

/** The model run directly in this process: what the agent must answer. */
export async function direct(bytes: Uint8Array, feeds: Feeds, deviceOptions = false): Promise<Record<string, number[]>> {
  // Quantized graphs compute slightly differently per session options: compare with the device's.
  const s = await ort.InferenceSession.create(bytes, deviceOptions ? DEVICE_SESSION_OPTIONS : {});
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.type === 'float16' ? fromFloat16Bits(t.data as Uint16Array) : Array.from(t.data as ArrayLike<number | bigint>, Number)]));
  } finally {
    await s.release();
  }
}

export function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tol, `${what}[${i}]: ${v} vs ${expected[i]}`));
}

export const rowsOf = (n: number, width: number, seed: number) => Array.from({ length: n }, (_, r) => Array.from({ length: width }, (_, j) => Math.fround(Math.sin((r + 1) * (j + 2) * seed))));

/** The steps, reading the lab when called (it is started in a `before`). */
export function zooSteps(get: () => PlaneWithAgent) {
  const cli = (...args: string[]) => get().cli(...args);
  const activeModel = async () => {
    const d = (await get().cp.api('GET', `/api/v1/devices/${get().deviceId}`)).body;
    return d.updateState === 'active' ? `${d.reported?.active?.model?.name}@${d.reported?.active?.model?.version}` : `${d.updateState}: ${JSON.stringify(d.reported?.lastError ?? null)}`;
  };
  const push = async (name: string, bytes: Uint8Array) => cli('models', 'push', await writeModel(name, bytes), '--name', name);
  /** Builds a bundle from a definition, deploys it to the agent and waits until it is active (its smoke test passed there). */
  const ship = async (ref: string, definition: Record<string, unknown>) => {
    const defDir = path.join(get().dir, `def-${ref.replace('@', '-')}`);
    await mkdir(defDir, { recursive: true });
    await writeFile(path.join(defDir, 'bundle.json'), JSON.stringify(definition));
    const built = await cli('bundles', 'build', ref, '--def', defDir);
    await cli('deploy', ref, '--device', get().deviceId);
    await waitFor(async () => (await activeModel()) === ref, `${ref} active`, 60_000).catch(async (e) => assert.fail(`${e.message}: ${await activeModel()}`));
    return built;
  };
  /** Rows of statistics the server stored for this device and version. */
  const statsRows = async (ref: string) => {
    const [name, version] = ref.split('@');
    const [{ versionId }] = await get().cp.plane.db
      .select({ versionId: modelVersions.id })
      .from(modelVersions)
      .innerJoin(models, eq(models.id, modelVersions.modelId))
      .where(and(eq(models.name, name), eq(modelVersions.version, Number(version))));
    const [{ n }] = await get().cp.plane.db
      .select({ n: sql<number>`coalesce(sum(${statsWindows.rows}), 0)` })
      .from(statsWindows)
      .where(and(eq(statsWindows.deviceId, get().deviceId), eq(statsWindows.modelVersionId, versionId)));
    return Number(n);
  };
  const statsReach = async (ref: string, sent: number) =>
    waitFor(async () => (await statsRows(ref)) >= sent, `${sent} rows of statistics for ${ref} on the server`, 30_000).catch(async (e) => {
      const drops = await get().cp.plane.db.select().from(statsDrops);
      const windows = await get().cp.plane.db.select({ v: statsWindows.modelVersionId, rows: statsWindows.rows }).from(statsWindows);
      assert.fail(`${e.message}; refused windows: ${JSON.stringify(drops)}; windows: ${JSON.stringify(windows)}; device: ${JSON.stringify((await api(get().port, 'GET', '/v1/status')).body)}`);
    });
  /** The version's reference profile (features + outputs per row), so its devices' windows are merged, not refused. */
  const setReference = async (ref: string, rows: Array<Record<string, unknown>>, numClasses?: number) => {
    const [name, version] = ref.split('@');
    const r = await get().cp.api('POST', `/api/v1/models/${name}/versions/${version}/reference`, { json: { rows, ...(numClasses ? { numClasses } : {}) } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const predict = async (body: unknown, headers?: Record<string, string>) => {
    const r = await api(get().port, 'POST', '/v1/predict', body, headers);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  async function writeModel(name: string, bytes: Uint8Array): Promise<string> {
    const file = path.join(get().dir, `${name}.onnx`);
    await writeFile(file, bytes);
    return file;
  }
  return { cli, push, ship, statsRows, statsReach, setReference, predict, writeModel };
}
