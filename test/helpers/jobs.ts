// REST helpers for retraining tests: push a model, set a policy, start a job, wait for it, read its logs.
// Takes a getter because the control plane is started in `before`, after the helpers are made.
import assert from 'node:assert/strict';
import type { TestPlane } from './control-plane.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * @example
 * const { setPolicy, startJob, waitJob } = jobHelpers(() => cp, { data: { dataset: 'sensors' } });
 * const job = await waitJob(await startJob('mlp'), ['succeeded', 'failed']);
 */
export function jobHelpers(plane: () => TestPlane, policyDefaults: Record<string, unknown> = {}) {
  const api = (method: string, p: string, json?: unknown) => plane().api(method, p, json === undefined ? {} : { json });
  const push = async (name: string, bytes: Uint8Array) => {
    const r = await plane().api('POST', `/api/v1/models/${name}/versions`, { body: bytes as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const setPolicy = async (model: string, policy: Record<string, unknown>) => {
    const r = await api('PUT', `/api/v1/models/${model}/retrain-policy`, { ...policyDefaults, ...policy });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const startJob = async (model: string) => {
    const r = await api('POST', `/api/v1/models/${model}/retrain`);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  };
  const waitJob = async (id: string, statuses: string[], timeoutMs = 30_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const j = (await api('GET', `/api/v1/jobs/${id}`)).body;
      if (statuses.includes(j.status)) return j;
      if (Date.now() > until) assert.fail(`job ${id} is ${j.status} (${j.error}), expected ${statuses.join('|')}`);
      await sleep(50);
    }
  };
  const logs = async (id: string) => (await api('GET', `/api/v1/jobs/${id}/logs`)).body.lines as Array<{ stream: string; line: string }>;
  return { api, push, setPolicy, startJob, waitJob, logs };
}
