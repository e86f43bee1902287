// Bench-only bulk provisioning of devices on Mosquitto (scale bench, BENCH_SCALE_MOSQ_BULK=1): device
// rows written straight into the database, their dynamic-security clients and roles written into
// Mosquitto's dynamic-security file while it is stopped, and each simulated device's identity file
// written where the simulator looks for it, so no device enrolls. Mosquitto 2.0 rewrites its whole
// dynamic-security file after every change (O(clients) per command), which makes enrolling tens of
// thousands of devices one by one take hours on this machine; enrollment is measured on its own
// (bench/mosquitto-enroll-rate.ts). The entries are exactly what enrollment would create.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { keyIdOf } from '../firmware-bundles/keys.ts';
import { hashDeviceSecret } from '../server/auth/device-credentials.ts';
import { randomId, randomSecret } from '../server/auth/secrets.ts';
import { DEVICE_CLIENT_TEXTNAME, deviceAcls, deviceRole } from '../server/broker/mosquitto-access.ts';
import { openDatabase } from '../server/db/client.ts';
import { devices } from '../server/db/schema.ts';
import { dynsecClientEntry, type TestMosquitto } from '../test/helpers/mosquitto.ts';

async function rssBytes(pid: number): Promise<number> {
  return Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

export interface BulkGroup {
  /** The simulator process's data dir and device name prefix (its devices are `<prefix><i>`). */
  dir: string;
  namePrefix: string;
  n: number;
  labels: Record<string, string>;
}

const FACTS = { arch: 'x64', cpus: 1, memoryBytes: 1024 ** 3, os: 'linux (simulated)', agentVersion: '0.1.0' };

export async function bulkProvisionMosquitto(o: { mosq: TestMosquitto; dbUrl: string; serverUrl: string; rootPublicKey: string; groups: BulkGroup[] }): Promise<{ devices: number; ms: number; brokerRssEmpty: number; brokerRssLoaded: number }> {
  const t0 = performance.now();
  const made = o.groups.flatMap((g) =>
    Array.from({ length: g.n }, (_, i) => ({ id: randomId('dev', 10), secret: randomSecret('fld'), name: `${g.namePrefix}${i}`, dir: path.join(g.dir, `${g.namePrefix}${i}`), labels: g.labels })),
  );
  const { db, client } = await openDatabase(o.dbUrl);
  try {
    const now = new Date().toISOString();
    for (let i = 0; i < made.length; i += 500) {
      await db.insert(devices).values(
        made.slice(i, i + 500).map((d) => ({ id: d.id, name: d.name, status: 'approved' as const, labels: d.labels, facts: FACTS, credentialHash: hashDeviceSecret(d.secret), approvedAt: now })),
      );
    }
  } finally {
    client.close();
  }
  const brokerRssEmpty = await rssBytes(o.mosq.pid!);
  await o.mosq.halt();
  const file = path.join(o.mosq.dir, 'dynamic-security.json');
  const state = JSON.parse(await readFile(file, 'utf8')) as { clients: unknown[]; roles: unknown[] };
  for (const d of made) {
    state.roles.push({ rolename: deviceRole(d.id), acls: deviceAcls(d.id) });
    state.clients.push({ ...dynsecClientEntry(d.id, d.secret, [deviceRole(d.id)]), clientid: d.id, textname: DEVICE_CLIENT_TEXTNAME });
  }
  await writeFile(file, JSON.stringify(state));
  await o.mosq.resume();
  const brokerRssLoaded = await rssBytes(o.mosq.pid!);
  const trust = { keyid: keyIdOf(o.rootPublicKey), publicKey: o.rootPublicKey, source: 'pinned', pinnedAt: new Date().toISOString() };
  for (const d of made) {
    await mkdir(d.dir, { recursive: true });
    const identity = { v: 1, deviceId: d.id, enrolledAt: new Date().toISOString(), serverUrl: o.serverUrl, mqtt: { url: o.mosq.url, clientId: d.id, username: d.id, password: d.secret }, labels: d.labels, trust, tls: null };
    await writeFile(path.join(d.dir, 'identity.json'), JSON.stringify(identity), { mode: 0o600 });
  }
  return { devices: made.length, ms: performance.now() - t0, brokerRssEmpty, brokerRssLoaded };
}
