// Enrollment against Mosquitto with dynamic security (scale bench): N enrollments, 25 at a time, on a
// fresh Mosquitto each, two ways in the same run:
// - before: the broker's round trip inside the enrollment's database transaction, one dynamic-security
//   message per enrollment (the flow until issue 16's fourth round, reproduced here);
// - now: enroll-service.ts, the broker provisioned before the transaction, requests pipelined.
// Beside them, a probe writes one audit row every 100 ms: its worst latency is what enrollment does to
// every other write (ingest, device state), which waits for the database's single write lock.
// Also counted: enrollments slower than 30 s, the agent's request timeout (the agent then retries, and a
// server-side enrollment that completed anyway has spent a token use and left a device nobody holds).
import { and, eq, sql } from 'drizzle-orm';
import { recordAudit } from '../server/audit/audit-log.ts';
import { hashDeviceSecret } from '../server/auth/device-credentials.ts';
import { randomId, randomSecret, sha256Hex } from '../server/auth/secrets.ts';
import { DynsecAdmin } from '../server/broker/dynsec-admin.ts';
import { DEVICE_CLIENT_TEXTNAME, deviceAcls, deviceRole } from '../server/broker/mosquitto-access.ts';
import { ControlPlane } from '../server/control-plane.ts';
import type { Db } from '../server/db/client.ts';
import { devices, enrollTokens } from '../server/db/schema.ts';
import { enrollDevice } from '../server/enroll/enroll-service.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { startMosquitto } from '../test/helpers/mosquitto.ts';
import type { BenchRow } from './lib.ts';

const FACTS = { arch: 'x64', cpus: 1, memoryBytes: 1024 ** 3, os: 'linux (simulated)', agentVersion: '0.1.0' };
const CONCURRENCY = 25;
const AGENT_TIMEOUT_MS = 30_000;

/** The pre-change flow: token spent, row written and the broker asked, all in one transaction. */
async function enrollInTransaction(db: Db, admin: DynsecAdmin, token: string): Promise<void> {
  const id = randomId('dev', 10);
  const secret = randomSecret('fld');
  await db.transaction(async (tx) => {
    const [tok] = await tx.update(enrollTokens).set({ uses: sql`${enrollTokens.uses} + 1` }).where(and(eq(enrollTokens.tokenHash, sha256Hex(token)))).returning();
    await tx.insert(devices).values({ id, status: 'approved', labels: tok.labels, facts: FACTS, credentialHash: hashDeviceSecret(secret), enrollTokenId: tok.id, approvedAt: new Date().toISOString() });
    await recordAudit(tx, `device ${id}`, 'device.enroll', id, { enrollToken: tok.id });
    await admin.runOk([
      { command: 'createRole', rolename: deviceRole(id), acls: deviceAcls(id) },
      { command: 'createClient', username: id, clientid: id, password: secret, textname: DEVICE_CLIENT_TEXTNAME, roles: [{ rolename: deviceRole(id) }] },
    ]);
  });
}

async function measure(mode: 'before' | 'now', n: number, dir: string): Promise<{ rate: number; failed: number; overAgentTimeout: number; p50: number; max: number; probeMax: number; probeFailed: number; messages?: number }> {
  const mosq = await startMosquitto();
  const plane = new ControlPlane(
    loadServerConfig({ FLOTILLA_DATA_DIR: `${dir}/${mode}`, FLOTILLA_HTTP_HOST: '127.0.0.1', FLOTILLA_HTTP_PORT: '0', FLOTILLA_LOG_LEVEL: 'error', FLOTILLA_DRIFT_CRON: 'off', FLOTILLA_BROKER_RECONCILE_S: '0', FLOTILLA_MQTT_URL: mosq.url, FLOTILLA_MQTT_ADMIN_USERNAME: mosq.admin.username, FLOTILLA_MQTT_ADMIN_PASSWORD: mosq.admin.password }),
    createLogger('silent'),
  );
  await plane.start();
  const admin = new DynsecAdmin({ url: mosq.url, ...mosq.admin, logger: createLogger('silent') });
  await admin.start();
  try {
    const res = await fetch(`${plane.httpUrl}/api/v1/enroll-tokens`, { method: 'POST', headers: { authorization: `Bearer ${plane.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ labels: { fleet: 'enroll' } }) });
    const token = ((await res.json()) as { token: string }).token;
    const times: number[] = [];
    let failed = 0;
    // The other writer: one small transaction every 100 ms while the enrollments run.
    const probe: number[] = [];
    let probeFailed = 0;
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const t = performance.now();
        await recordAudit(plane.db, 'bench', 'bench.write-probe', 'probe').then(() => probe.push(performance.now() - t), () => probeFailed++);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next++ < n) {
          const t = performance.now();
          try {
            if (mode === 'before') await enrollInTransaction(plane.db, admin, token);
            else await enrollDevice(plane.db, { token, facts: FACTS }, plane.brokerAccess);
          } catch {
            failed++;
          }
          times.push(performance.now() - t);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    probing = false;
    await prober;
    times.sort((a, b) => a - b);
    return { rate: (n - failed) / secs, failed, overAgentTimeout: times.filter((t) => t > AGENT_TIMEOUT_MS).length, p50: times[Math.floor(times.length / 2)], max: times.at(-1)!, probeMax: Math.max(0, ...probe), probeFailed };
  } finally {
    await admin.stop();
    await plane.stop();
    await mosq.stop();
  }
}

export async function mosquittoEnrollRows(n: number, dir: string): Promise<BenchRow[]> {
  const before = await measure('before', n, dir);
  const now = await measure('now', n, dir);
  const note = (m: typeof now) =>
    `${m.failed} failed, ${m.overAgentTimeout} over the agent's 30 s timeout; per enrollment p50 ${(m.p50 / 1000).toFixed(2)} s, max ${(m.max / 1000).toFixed(1)} s; another writer's worst wait ${(m.probeMax / 1000).toFixed(2)} s${m.probeFailed ? ` (${m.probeFailed} failed past the 10 s bound)` : ''}`;
  return [
    { benchmark: `enrollments/s on Mosquitto + dynsec, ${n} devices, ${CONCURRENCY} at a time: broker provisioned before the transaction, pipelined`, value: now.rate, unit: 'enroll/s', baseline: 'broker round trip inside the transaction (before)', baselineValue: before.rate, ratio: now.rate / before.rate, note: `now: ${note(now)}; before: ${note(before)}` },
  ];
}
