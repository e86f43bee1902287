// Fuzzing the REST API from its own OpenAPI document (GET /api/v1/openapi.json): every route and
// method gets requests with values that follow the schema and values at and past its edges, from a
// fixed seed. No request may get a 5xx, and a request answered 4xx must leave the database as it was
// (every table's rows hashed before and after).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'drizzle-orm';
import { OpenApiFuzzer } from './helpers/openapi-fuzz.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

// FLOTILLA_FUZZ_SEED explores other seeds by hand; `npm test` always runs the fixed one.
const SEED = Number(process.env.FLOTILLA_FUZZ_SEED ?? 20261203);
/** Requests per operation: a couple that follow the schema, the rest with edge values mixed in. */
const CASES = [0, 0.2, 0.2, 0.5, 1];

describe('API fuzz over the OpenAPI document', () => {
  let cp: TestPlane;
  const pool: string[] = ['fuzzm', 'fuzzm@1', '1', 'latest', 'champion', 'fz', 'site=fz', 'cohort', 'device', 'nope'];

  before(async () => {
    // No scheduler and no drift cron: the database changes only through the requests under test.
    cp = await startControlPlane({ driftCron: 'off', schedulerEnabled: false });
    assert.equal((await cp.api('POST', '/api/v1/models/fuzzm/versions', { body: gemmModel() as BodyInit })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'fz', selector: 'site=fz' } })).status, 201);
    const token = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'fz' } } });
    const dev = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: token.body.token, facts: { arch: 'x64', cpus: 1, memoryBytes: 1, os: 'linux', agentVersion: '0.1.0' } } });
    assert.equal(dev.status, 201);
    pool.push(token.body.id, dev.body.deviceId);
  });
  after(async () => {
    await cp.stop();
  });

  const BACKGROUND_TABLES = new Set(['event_cursors', 'webhook_deliveries']);
  /** Every row of every table, as one string per table (one query: the schema does not change meanwhile). */
  let dumpQuery: string | null = null;
  async function fingerprint(): Promise<Map<string, string>> {
    if (!dumpQuery) {
      const tables = await cp.plane.db.all<{ name: string }>(sql.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"));
      const parts: string[] = [];
      for (const { name } of tables) {
        // Written by the webhook sender on its own timer (events of earlier 2xx requests fanned out), not by the request.
        if (BACKGROUND_TABLES.has(name)) continue;
        const cols = await cp.plane.db.all<{ name: string }>(sql.raw(`SELECT name FROM pragma_table_info('${name}')`));
        const row = cols.map((c) => `quote("${c.name}")`).join(" || ',' || ");
        parts.push(`SELECT '${name}' AS t, (SELECT group_concat(r, '|') FROM (SELECT ${row} AS r FROM "${name}" ORDER BY rowid)) AS d`);
      }
      dumpQuery = parts.join(' UNION ALL ');
    }
    const rows = await cp.plane.db.all<{ t: string; d: string | null }>(sql.raw(dumpQuery));
    return new Map(rows.map((r) => [r.t, createHash('sha256').update(r.d ?? '').digest('hex')]));
  }

  test('no request gets a 5xx; a 4xx changes nothing in the database', async () => {
    const doc = await (await fetch(`${cp.url}/api/v1/openapi.json`)).json();
    const fuzzer = new OpenApiFuzzer(doc, SEED, pool);
    const operations = fuzzer.operations();
    assert.ok(operations.length > 60, `only ${operations.length} operations in the document`);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let before = await fingerprint();
    for (const [route, method, op] of operations) {
      for (const edge of CASES) {
        const req = fuzzer.request(route, method, op, edge);
        const res = await fetch(`${cp.url}/api/v1${req.path.replace(/^\/api\/v1/, '')}`, {
          method: req.method,
          headers: { ...req.headers, authorization: `Bearer ${cp.adminToken}` },
          body: req.body as BodyInit | undefined,
          signal: AbortSignal.timeout(30_000),
        });
        // An event stream never ends: its status and headers are the answer; stop reading it.
        const streaming = res.headers.get('content-type')?.startsWith('text/event-stream');
        const text = streaming ? (await res.body?.cancel(), '') : await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const what = `${req.method} ${req.path.slice(0, 160)} (${route}) body ${String(req.body ?? '').slice(0, 160)}`;
        if (res.status >= 500) failures.push(`${res.status} from ${what}: ${text.slice(0, 200)}`);
        const after = await fingerprint();
        if (res.status >= 400 && res.status < 500) {
          const changed = [...after].filter(([t, h]) => before.get(t) !== h).map(([t]) => t);
          if (changed.length) failures.push(`${res.status} changed ${changed.join(', ')}: ${what}`);
        }
        before = after;
      }
    }
    const summary = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
    assert.deepEqual(failures, [], `statuses: ${summary}`);
    // The fuzz must get past validation somewhere, or it proves little.
    assert.ok([...statuses.keys()].some((s) => s < 300), `statuses: ${summary}`);
    assert.ok((statuses.get(404) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, `statuses: ${summary}`);
  });
});
