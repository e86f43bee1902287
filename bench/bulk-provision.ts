// Bench-only bulk provisioning: approved devices inserted straight into the control plane's database,
// their secrets hashed by the server's own credential function, and each simulated device's identity
// file written where the agent looks for it — so a fleet of 19,000 starts by connecting instead of
// spending ~10 minutes enrolling one by one. Enrollment itself is measured by the 2,000-device rows;
// nothing but benches uses this (a real fleet enrolls: tokens, audit, events).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IDENTITY_FILE, type Identity } from '../agent/identity.ts';
import { keyIdOf } from '../firmware-bundles/keys.ts';
import { hashDeviceSecret } from '../server/auth/device-credentials.ts';
import { randomId, randomSecret } from '../server/auth/secrets.ts';
import type { Db } from '../server/db/client.ts';
import { devices } from '../server/db/schema.ts';

export interface BulkProvisionOptions {
  db: Db;
  n: number;
  /** Device names are `<namePrefix><i>`, the simulator's naming (its data dir per device is `<dataDir>/<name>`). */
  namePrefix: string;
  /** Where the identity files go; none are written without it (devices that no agent runs: the rollout-tick bench). */
  dataDir?: string;
  labels: Record<string, string>;
  serverUrl: string;
  mqttUrl: string;
  /** The release root the devices pin. */
  rootPublicKey: string;
}

/** Inserts the devices; returns their ids in name order. */
export async function bulkProvision(o: BulkProvisionOptions): Promise<string[]> {
  const ids: string[] = [];
  const now = new Date().toISOString();
  const trust = { keyid: keyIdOf(o.rootPublicKey), publicKey: o.rootPublicKey, source: 'pinned' as const, pinnedAt: now };
  for (let start = 0; start < o.n; start += 500) {
    const batch = Array.from({ length: Math.min(500, o.n - start) }, (_, k) => ({ name: `${o.namePrefix}${start + k}`, id: randomId('dev', 10), secret: randomSecret('fld') }));
    await o.db.insert(devices).values(
      batch.map((d) => ({ id: d.id, name: d.name, status: 'approved' as const, labels: o.labels, facts: { bulkProvisioned: true }, credentialHash: hashDeviceSecret(d.secret), approvedAt: now })),
    );
    ids.push(...batch.map((d) => d.id));
    const dataDir = o.dataDir;
    if (!dataDir) continue;
    await Promise.all(
      batch.map(async (d) => {
        const identity: Identity = { v: 1, deviceId: d.id, enrolledAt: now, serverUrl: o.serverUrl, mqtt: { url: o.mqttUrl, clientId: d.id, username: d.id, password: d.secret }, labels: o.labels, trust, tls: null };
        const dir = path.join(dataDir, d.name);
        await mkdir(dir, { recursive: true });
        await writeFile(path.join(dir, IDENTITY_FILE), JSON.stringify(identity), { mode: 0o600 });
      }),
    );
  }
  return ids;
}
