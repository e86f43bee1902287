// Agent settings per cohort or device (telemetry interval, stats window, sample capture). They ride in
// the signed manifest, so a change re-signs (next counter, same bundle) and republishes the desired
// state of every device whose effective settings it changes.
import { and, eq, isNull, or } from 'drizzle-orm';
import { canonicalize } from '../../firmware-bundles/canonical-json.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { getCohort } from '../cohorts/cohort-service.ts';
import { matches } from '../cohorts/selector.ts';
import type { Db, Tx } from '../db/client.ts';
import { agentSettings, cohorts, deviceDesired, devices } from '../db/schema.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { getDevice, parseSelectorOrThrow } from '../devices/device-service.ts';
import { Invalid, NotFound } from '../errors.ts';
import { effectiveAgentConfigs, StoredAgentSettings, type Effective } from './effective-settings.ts';

export type SettingsScope = 'cohort' | 'device';

export interface SettingsView {
  scope: SettingsScope;
  target: string;
  settings: StoredAgentSettings;
  updatedAt: string;
  updatedBy: string | null;
}

function parseSettings(input: unknown): StoredAgentSettings {
  const r = StoredAgentSettings.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw Invalid(`invalid settings: ${issue.path.length ? issue.path.join('.') + ': ' : ''}${issue.message}`, { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
  }
  if (!Object.keys(r.data).length || (r.data.sampleCapture && !Object.keys(r.data.sampleCapture).length)) throw Invalid('give at least one setting');
  return r.data;
}

async function checkTarget(tx: Tx, scope: SettingsScope, target: string): Promise<void> {
  if (scope === 'cohort') await getCohort(tx, target);
  else await getDevice(tx, target);
}

/** Devices with desired state whose effective settings may depend on this scope and target. */
async function candidates(tx: Tx, scope: SettingsScope, target: string) {
  if (scope === 'device') return tx.select({ deviceId: deviceDesired.deviceId, cohort: deviceDesired.cohort, manifest: deviceDesired.manifest }).from(deviceDesired).where(eq(deviceDesired.deviceId, target));
  const cohort = await tx.query.cohorts.findFirst({ where: eq(cohorts.name, target) });
  const rows = await tx
    .select({ deviceId: deviceDesired.deviceId, cohort: deviceDesired.cohort, manifest: deviceDesired.manifest, labels: devices.labels })
    .from(deviceDesired)
    .innerJoin(devices, eq(devices.id, deviceDesired.deviceId))
    .where(or(eq(deviceDesired.cohort, target), isNull(deviceDesired.cohort)));
  const terms = cohort ? parseSelectorOrThrow(cohort.selector) : null;
  return rows.filter((r) => r.cohort === target || (terms !== null && matches(terms, r.labels)));
}

/** Of the candidates, the devices whose signed settings differ from their effective ones now. */
async function stale(tx: Tx, rows: Array<{ deviceId: string; cohort: string | null; manifest: unknown }>): Promise<string[]> {
  const eff = await effectiveAgentConfigs(tx, rows);
  const same = (a: unknown, b: unknown) => a !== undefined && canonicalize(a) === canonicalize(b);
  // The reference layout rides in agentConfig too (deployments/stats-layout.ts) but is not a setting.
  const settingsOf = (m: unknown) => {
    const c = (m as { signed?: { agentConfig?: Record<string, unknown> } }).signed?.agentConfig;
    if (!c) return c;
    const { statsLayout: _layout, ...rest } = c;
    return rest;
  };
  return rows.filter((r) => !same(settingsOf(r.manifest), eff.get(r.deviceId)!.config)).map((r) => r.deviceId);
}

/** Applies a settings change: writes it and the audit record in one transaction, then re-signs the devices it changes. */
async function change(db: Db, desired: DesiredState, scope: SettingsScope, target: string, write: (tx: Tx) => Promise<void>) {
  const ids = await db.transaction(async (tx) => {
    await write(tx);
    return stale(tx, await candidates(tx, scope, target));
  });
  return desired.resignDevices(ids);
}

export async function putSettings(db: Db, desired: DesiredState, scope: SettingsScope, target: string, input: unknown, actor: string): Promise<SettingsView & { resigned: string[] }> {
  const settings = parseSettings(input);
  let view!: SettingsView;
  const resigned = await change(db, desired, scope, target, async (tx) => {
    await checkTarget(tx, scope, target);
    const row = { settings, updatedAt: new Date().toISOString(), updatedBy: actor };
    const [stored] = await tx.insert(agentSettings).values({ scope, target, ...row }).onConflictDoUpdate({ target: [agentSettings.scope, agentSettings.target], set: row }).returning();
    await recordAudit(tx, actor, 'settings.put', `${scope}:${target}`, settings);
    view = stored as SettingsView;
  });
  return { ...view, resigned };
}

export async function deleteSettings(db: Db, desired: DesiredState, scope: SettingsScope, target: string, actor: string): Promise<{ resigned: string[] }> {
  const resigned = await change(db, desired, scope, target, async (tx) => {
    const gone = await tx.delete(agentSettings).where(and(eq(agentSettings.scope, scope), eq(agentSettings.target, target))).returning();
    if (!gone.length) throw NotFound(`settings for ${scope} "${target}"`);
    await recordAudit(tx, actor, 'settings.delete', `${scope}:${target}`);
  });
  return { resigned };
}

export async function getSettings(db: Tx, scope: SettingsScope, target: string): Promise<SettingsView> {
  const row = await db.query.agentSettings.findFirst({ where: and(eq(agentSettings.scope, scope), eq(agentSettings.target, target)) });
  if (!row) throw NotFound(`settings for ${scope} "${target}"`, { hint: 'a device shows its effective settings at GET /agent-settings/effective/{device}' });
  return row as SettingsView;
}

export async function listSettings(db: Tx, scope?: SettingsScope): Promise<SettingsView[]> {
  return (await db.select().from(agentSettings).where(scope ? eq(agentSettings.scope, scope) : undefined).orderBy(agentSettings.scope, agentSettings.target)) as SettingsView[];
}

/** What a device gets now, with the layers that made it (cohort of its deployment, else matching cohorts). */
export async function effectiveFor(db: Tx, deviceId: string): Promise<Effective & { deviceId: string; cohort: string | null }> {
  await getDevice(db, deviceId);
  const [d] = await db.select({ cohort: deviceDesired.cohort }).from(deviceDesired).where(eq(deviceDesired.deviceId, deviceId));
  const cohort = d?.cohort ?? null;
  const eff = (await effectiveAgentConfigs(db, [{ deviceId, cohort }])).get(deviceId)!;
  return { deviceId, cohort, ...eff };
}
