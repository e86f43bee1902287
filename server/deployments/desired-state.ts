// Desired state per device: signs a deployment manifest for each target device (its own id, a counter
// strictly above any it had) and publishes it retained on the device's `desired` topic together with
// the current key list. The database row is the truth; publishing is repeatable (start, key rotation).
import type { InValue } from '@libsql/client';
import { and, eq, lt, ne, sql, type SQL } from 'drizzle-orm';
import type { Logger } from 'pino';
import { canonicalize } from '../../firmware-bundles/canonical-json.ts';
import { loadSigningKeys } from '../../firmware-bundles/envelope.ts';
import { createManifest, type DeploymentManifest, type ShadowCandidate } from '../../firmware-bundles/manifest.ts';
import type { Db, Tx } from '../db/client.ts';
import { bundles, deviceDesired, devices, models, modelVersions } from '../db/schema.ts';
import { recordAudit } from '../audit/audit-log.ts';
import type { KeyCipher } from '../keys/key-cipher.ts';
import { signingKeys } from '../keys/key-service.ts';
import { inIds } from '../db/in-ids.ts';
import { effectiveAgentConfigs } from '../settings/effective-settings.ts';
import { manifestStatsLayout } from './stats-layout.ts';
import type { DesiredPayload, DesiredPublisher } from './desired-publisher.ts';
import { manifestStamp, type ManifestStamp } from './manifest-stamp.ts';
import { signChunks } from './sign-manifests.ts';
import { desiredMessageHead, storedDesiredPayloads } from './stored-desired.ts';
import { insertRows } from '../ingest/multi-row.ts';

// The assignment's rows as multi-row VALUES with bound parameters (multi-row.ts), one statement per
// chunk of devices: the earlier single statement read the rows back from one JSON parameter through
// json_each (≈ 15 MB of JSON built, copied and re-parsed per column for 10,000 devices).
const col = (k: keyof typeof deviceDesired.$inferSelect) => `"${deviceDesired[k].name}"`;
const UPSERT_HEAD = `insert into "device_desired" (${(['deviceId', 'counter', 'bundleId', 'deploymentId', 'cohort', 'manifest', 'expiresAt', 'updatedAt', 'previousBundleId', 'shadow'] as const).map(col).join(', ')})`;
// A new bundle restarts the stale clock (mismatch, republished); a re-sign of the same bundle keeps it.
const UPSERT_TAIL = `on conflict (${col('deviceId')}) do update set ${(['counter', 'bundleId', 'deploymentId', 'cohort', 'manifest', 'expiresAt', 'updatedAt', 'previousBundleId', 'shadow'] as const).map((k) => `${col(k)} = excluded.${col(k)}`).join(', ')}, ${(['mismatchSince', 'republishedAt'] as const).map((k) => `${col(k)} = case when "device_desired".${col('bundleId')} = excluded.${col('bundleId')} then "device_desired".${col(k)} end`).join(', ')}`;

export const DEFAULT_MANIFEST_TTL_S = 30 * 86400;
export class DesiredState {
  constructor(
    private readonly db: Db,
    private readonly publisher: DesiredPublisher,
    private readonly logger: Logger,
    private readonly cipher: KeyCipher,
    private readonly manifestTtlS = DEFAULT_MANIFEST_TTL_S,
  ) {}

  /**
   * Writes signed manifests for `deviceIds` (inside the caller's transaction), each with the device's
   * effective agent settings; returns their desired messages, serialized, to hand to publishBuilt()
   * once the transaction committed (or publish the ids afterwards).
   */
  async assign(tx: Tx, bundleId: string, deviceIds: string[], meta: { deploymentId?: string; cohort?: string; shadow?: ShadowSpec | null }): Promise<DesiredPayload[]> {
    if (!deviceIds.length) return [];
    const { keylist, keys: pems } = await signingKeys(tx, this.cipher);
    // Parsed once per assignment: parsing a PEM costs several times the signature it makes.
    const keys = loadSigningKeys(pems);
    const bundle = (await tx.query.bundles.findFirst({ where: eq(bundles.id, bundleId) }))!;
    const mv = await modelOf(tx, bundle.modelVersionId);
    // A shadow candidate is signed into the same manifest (files by hash, like the bundle); an assignment
    // without one ends any shadow the device ran.
    const shadow = meta.shadow ? await shadowCandidate(tx, meta.shadow) : undefined;
    // Only what the new rows depend on (not the stored manifests: 10,000 of them are megabytes of JSON to parse).
    const existing = new Map<string, { counter: number; bundleId: string; previousBundleId: string | null }>();
    const prior = await tx
      .select({ deviceId: deviceDesired.deviceId, counter: deviceDesired.counter, bundleId: deviceDesired.bundleId, previousBundleId: deviceDesired.previousBundleId })
      .from(deviceDesired)
      .where(inIds(deviceDesired.deviceId, deviceIds));
    for (const r of prior) existing.set(r.deviceId, r);
    const expiresAt = new Date(Date.now() + this.manifestTtlS * 1000);
    const settings = await effectiveAgentConfigs(tx, deviceIds.map((deviceId) => ({ deviceId, cohort: meta.cohort ?? null })));
    const floors = await reportedFloors(tx, deviceIds);
    const statsLayout = await manifestStatsLayout(tx, bundle);
    const now = new Date().toISOString();
    // The parts every device shares are validated once per distinct agent config (a cohort's devices
    // usually share one); each device's manifest is that template with its own id and counter, signed
    // on its own.
    const templates = new Map<string, ManifestStamp>();
    const todo: Array<{ deviceId: string; counter: number; stamp: ManifestStamp }> = [];
    for (const deviceId of deviceIds) {
      const stored = existing.get(deviceId)?.counter ?? 0;
      const reported = floors.get(deviceId) ?? 0;
      // Restored from an older backup, the stored counter may be behind what the device has activated:
      // sign above what it reported, or it would refuse the manifest as a rollback. Recorded once learnt.
      const counter = Math.max(stored, reported) + 1;
      if (reported > stored) await recordAudit(tx, 'system', 'device.counter.raise', deviceId, { stored, reported, signed: counter });
      const agentConfig = statsLayout ? { ...settings.get(deviceId)!.config, statsLayout } : settings.get(deviceId)!.config;
      const configKey = JSON.stringify(agentConfig);
      let stamp = templates.get(configKey);
      if (!stamp) {
        const template: DeploymentManifest = createManifest({
          deviceId,
          cohort: meta.cohort,
          bundle: { id: bundle.id, name: bundle.name, model: { name: mv.name, version: mv.version } },
          files: bundle.files,
          minAgentVersion: bundle.minAgentVersion,
          counter,
          keylistVersion: keylist.signed.version,
          expiresAt,
          agentConfig,
          shadow,
        });
        stamp = manifestStamp(template);
        templates.set(configKey, stamp);
      }
      todo.push({ deviceId, counter, stamp });
    }
    // Signed by the signer thread chunk by chunk while this thread stores the chunk before (sign-manifests.ts).
    const chunks = signChunks(todo.length, (i) => todo[i].stamp(todo[i].deviceId, todo[i].counter), keys);
    const shadowText = meta.shadow ? JSON.stringify(meta.shadow) : null;
    const deploymentId = meta.deploymentId ?? null;
    const cohort = meta.cohort ?? null;
    const expires = expiresAt.toISOString();
    const out: DesiredPayload[] = [];
    const head = desiredMessageHead(keylist);
    let i = 0;
    for (const chunk of chunks) {
      const rows: InValue[][] = [];
      for (const manifest of await chunk) {
        const { deviceId, counter } = todo[i++];
        const prev = existing.get(deviceId);
        // What a rollback goes back to; a re-sign of the same bundle keeps it (and the stale clock).
        const previousBundleId = prev?.bundleId !== bundleId ? (prev?.bundleId ?? null) : (prev?.previousBundleId ?? null);
        // The manifest as text, not nested JSON: SQLite would re-print the signed numbers in its own float format.
        rows.push([deviceId, counter, bundleId, deploymentId, cohort, manifest, expires, now, previousBundleId, shadowText]);
        // The message as a restart would publish it from the stored row (stored-desired.ts): same bytes.
        out.push({ deviceId, counter, payload: `${head}${manifest}}` });
      }
      await insertRows(tx, UPSERT_HEAD, rows, UPSERT_TAIL);
    }
    return out;
  }

  /** Publishes the stored desired state of the given devices (all when omitted). */
  async publish(deviceIds?: string[]): Promise<void> {
    await this.publishBuilt(await storedDesiredPayloads(this.db, deviceIds));
  }

  /** Publishes messages assign() returned; call only once their transaction committed (stored before published). */
  async publishBuilt(messages: DesiredPayload[]): Promise<void> {
    if (!messages.length) return;
    await this.publisher.publish(messages);
    this.logger.debug({ devices: messages.length }, 'published desired state');
  }

  /** A revoked device is published to no more: its publish-order entry goes (publish-order.ts). */
  forget(deviceIds: string[]): void {
    this.publisher.forget(deviceIds);
  }

  /** Devices the publish-order gate remembers (bounded by the devices not revoked). */
  rememberedForOrder(): number {
    return this.publisher.remembered();
  }

  /**
   * Re-signs (new counter, new expiry, same bundle) every manifest that expires within `horizonMs`, so a
   * fleet never freezes on expired desired state; returns the devices refreshed.
   */
  async refreshExpiring(horizonMs = (this.manifestTtlS * 1000) / 3): Promise<string[]> {
    const soon = new Date(Date.now() + horizonMs).toISOString();
    const ids = await this.resign(lt(deviceDesired.expiresAt, soon));
    if (ids.length) this.logger.info({ devices: ids.length }, 're-signed manifests close to expiry');
    return ids;
  }

  /** After a key-list change: re-sign every device's manifest with the current keys and republish. */
  async resignAll(): Promise<void> {
    await this.resign();
  }

  /**
   * After a reference profile of a version was set: re-sign the devices whose desired bundle is of
   * that version and whose manifest does not carry the layout they should sketch on now
   * (`agentConfig.statsLayout`, see stats-layout.ts); returns them.
   */
  async resignVersion(modelVersionId: number): Promise<string[]> {
    const rows = await this.db
      .select({ deviceId: deviceDesired.deviceId, manifest: deviceDesired.manifest, modelVersionId: bundles.modelVersionId, definition: bundles.definition })
      .from(deviceDesired)
      .innerJoin(bundles, eq(bundles.id, deviceDesired.bundleId))
      .where(eq(bundles.modelVersionId, modelVersionId));
    const stale: string[] = [];
    for (const r of rows) {
      const want = await manifestStatsLayout(this.db, r);
      const has = (r.manifest as { signed?: { agentConfig?: { statsLayout?: unknown } } }).signed?.agentConfig?.statsLayout;
      if ((want === undefined) !== (has === undefined) || (want && canonicalize(want) !== canonicalize(has))) stale.push(r.deviceId);
    }
    return this.resignDevices(stale);
  }

  /** After an agent settings change: re-sign and republish these devices' manifests (those without desired state are skipped). */
  async resignDevices(deviceIds: string[]): Promise<string[]> {
    if (!deviceIds.length) return [];
    return this.resign(inIds(deviceDesired.deviceId, deviceIds));
  }

  /** Re-signs the matching devices' manifests (same bundle, next counter, fresh expiry) and publishes them; revoked devices are left alone. */
  private async resign(where?: SQL): Promise<string[]> {
    const rows = (
      await this.db
        .select({ row: deviceDesired })
        .from(deviceDesired)
        .innerJoin(devices, eq(devices.id, deviceDesired.deviceId))
        .where(and(ne(devices.status, 'revoked'), where))
    ).map((r) => r.row);
    if (!rows.length) return [];
    const built = await this.db.transaction(async (tx) => {
      const out: DesiredPayload[] = [];
      for (const group of sameAssignment(rows)) {
        const row = group[0];
        out.push(...(await this.assign(tx, row.bundleId, group.map((r) => r.deviceId), { deploymentId: row.deploymentId ?? undefined, cohort: row.cohort ?? undefined, shadow: row.shadow })));
      }
      return out;
    });
    await this.publishBuilt(built);
    return rows.map((r) => r.deviceId);
  }
}

/**
 * Desired-state rows grouped by what they were assigned (bundle, deployment, cohort, shadow), so a
 * re-sign is one assignment per group rather than one per device.
 */
export function sameAssignment<R extends { bundleId: string; deploymentId: string | null; cohort: string | null; shadow: ShadowSpec | null }>(rows: R[]): R[][] {
  const groups = new Map<string, R[]>();
  for (const r of rows) {
    const key = canonicalize([r.bundleId, r.deploymentId, r.cohort, r.shadow]);
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()];
}

/** What a rollout's shadow stage signs beside a device's bundle (stored in device_desired.shadow). */
export interface ShadowSpec {
  rolloutId: string;
  bundleId: string;
  share: number;
  windowS: number;
}

async function modelOf(tx: Tx, modelVersionId: number): Promise<{ name: string; version: number }> {
  const [mv] = await tx
    .select({ name: models.name, version: modelVersions.version })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(eq(modelVersions.id, modelVersionId));
  return mv;
}

async function shadowCandidate(tx: Tx, spec: ShadowSpec): Promise<ShadowCandidate> {
  const b = (await tx.query.bundles.findFirst({ where: eq(bundles.id, spec.bundleId) }))!;
  const mv = await modelOf(tx, b.modelVersionId);
  return {
    rolloutId: spec.rolloutId,
    share: spec.share,
    windowS: spec.windowS,
    bundle: { id: b.id, name: b.name, model: { name: mv.name, version: mv.version } },
    files: b.files.map(({ path, sha256, size }) => ({ path, sha256, size })),
    minAgentVersion: b.minAgentVersion,
  };
}

/** The highest counter each device reported having activated (its rollback floor), from its last `reported`. */
async function reportedFloors(tx: Tx, deviceIds: string[]): Promise<Map<string, number>> {
  // The two numbers only, extracted by SQLite: a device's last report (transitions and all) is not parsed.
  const rows = await tx
    .select({ id: devices.id, highest: sql<unknown>`${devices.reported} ->> '$.highestCounter'`, active: sql<unknown>`${devices.reported} ->> '$.active.counter'` })
    .from(devices)
    .where(inIds(devices.id, deviceIds));
  const out = new Map<string, number>();
  for (const r of rows) {
    const n = Math.max(Number.isSafeInteger(r.highest) ? (r.highest as number) : 0, Number.isSafeInteger(r.active) ? (r.active as number) : 0);
    if (n > 0) out.set(r.id, n);
  }
  return out;
}
