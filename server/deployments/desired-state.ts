// Desired state per device: signs a deployment manifest for each target device (its own id, a counter
// strictly above any it had) and publishes it retained on the device's `desired` topic together with
// the current key list. The database row is the truth; publishing is repeatable (start, key rotation).
import { eq, inArray, lt, type SQL } from 'drizzle-orm';
import type { Logger } from 'pino';
import { createManifest, signManifest } from '../../firmware-bundles/manifest.ts';
import type { DesiredMessage } from '../../protocol/messages/desired.ts';
import type { Db, Tx } from '../db/client.ts';
import { bundles, deviceDesired, models, modelVersions } from '../db/schema.ts';
import { currentKeyList, signingKeys } from '../keys/key-service.ts';
import type { DeviceBus } from '../mqtt/device-bus.ts';
import { effectiveAgentConfigs } from '../settings/effective-settings.ts';

export const DEFAULT_MANIFEST_TTL_S = 30 * 86400;
const PUBLISH_WINDOW = 256;

export class DesiredState {
  constructor(
    private readonly db: Db,
    private readonly bus: DeviceBus,
    private readonly logger: Logger,
    private readonly manifestTtlS = DEFAULT_MANIFEST_TTL_S,
  ) {}

  /**
   * Writes signed manifests for `deviceIds` (inside the caller's transaction), each with the device's
   * effective agent settings; publish afterwards.
   */
  async assign(tx: Tx, bundleId: string, deviceIds: string[], meta: { deploymentId?: string; cohort?: string }): Promise<void> {
    if (!deviceIds.length) return;
    const { keylist, keys } = await signingKeys(tx);
    const bundle = (await tx.query.bundles.findFirst({ where: eq(bundles.id, bundleId) }))!;
    const [mv] = await tx
      .select({ name: models.name, version: modelVersions.version })
      .from(modelVersions)
      .innerJoin(models, eq(models.id, modelVersions.modelId))
      .where(eq(modelVersions.id, bundle.modelVersionId));
    const existing = new Map((await tx.select().from(deviceDesired).where(inArray(deviceDesired.deviceId, deviceIds))).map((r) => [r.deviceId, r]));
    const expiresAt = new Date(Date.now() + this.manifestTtlS * 1000);
    const settings = await effectiveAgentConfigs(tx, deviceIds.map((deviceId) => ({ deviceId, cohort: meta.cohort ?? null })));
    for (const deviceId of deviceIds) {
      const counter = (existing.get(deviceId)?.counter ?? 0) + 1;
      const manifest = signManifest(
        createManifest({
          deviceId,
          cohort: meta.cohort,
          bundle: { id: bundle.id, name: bundle.name, model: { name: mv.name, version: mv.version } },
          files: bundle.files,
          minAgentVersion: bundle.minAgentVersion,
          counter,
          keylistVersion: keylist.signed.version,
          expiresAt,
          agentConfig: settings.get(deviceId)!.config,
        }),
        keys,
      );
      const row = { counter, bundleId, deploymentId: meta.deploymentId ?? null, cohort: meta.cohort ?? null, manifest, expiresAt: expiresAt.toISOString(), updatedAt: new Date().toISOString() };
      await tx.insert(deviceDesired).values({ deviceId, ...row }).onConflictDoUpdate({ target: deviceDesired.deviceId, set: row });
    }
  }

  /** Publishes the stored desired state of the given devices (all when omitted). */
  async publish(deviceIds?: string[]): Promise<void> {
    const list = await currentKeyList(this.db);
    if (!list) return;
    const rows = await this.db.select().from(deviceDesired).where(deviceIds ? inArray(deviceDesired.deviceId, deviceIds) : undefined);
    // A window of publishes in flight rather than one round trip each: at start this republishes the
    // whole fleet, and the HTTP API only comes up after it.
    for (let i = 0; i < rows.length; i += PUBLISH_WINDOW) {
      await Promise.all(
        rows.slice(i, i + PUBLISH_WINDOW).map((row) => {
          const message: DesiredMessage = { v: 1, keylist: list as DesiredMessage['keylist'], manifest: row.manifest as DesiredMessage['manifest'] };
          return this.bus.publish(row.deviceId, 'desired', message, { retain: true });
        }),
      );
    }
    this.logger.debug({ devices: rows.length }, 'published desired state');
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

  /** After an agent settings change: re-sign and republish these devices' manifests (those without desired state are skipped). */
  async resignDevices(deviceIds: string[]): Promise<string[]> {
    if (!deviceIds.length) return [];
    return this.resign(inArray(deviceDesired.deviceId, deviceIds));
  }

  /** Re-signs the matching devices' manifests (same bundle, next counter, fresh expiry) and publishes them. */
  private async resign(where?: SQL): Promise<string[]> {
    const rows = await this.db.select().from(deviceDesired).where(where);
    if (!rows.length) return [];
    await this.db.transaction(async (tx) => {
      for (const row of rows) await this.assign(tx, row.bundleId, [row.deviceId], { deploymentId: row.deploymentId ?? undefined, cohort: row.cohort ?? undefined });
    });
    const ids = rows.map((r) => r.deviceId);
    await this.publish(ids);
    return ids;
  }
}
