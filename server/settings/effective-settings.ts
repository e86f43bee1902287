// The agent settings a device gets in its signed manifest: defaults < cohort settings < device settings.
// Which cohort: the one whose deployment gave the device its bundle (device_desired.cohort); a device
// deployed to directly takes every cohort whose selector matches its labels, applied in name order
// (so where two such cohorts set the same field, the name that sorts last wins).
import { inArray } from 'drizzle-orm';
import { z } from 'zod';
import { AgentConfig } from '../../firmware-bundles/manifest.ts';
import { matches } from '../cohorts/selector.ts';
import type { Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { agentSettings, cohorts, devices } from '../db/schema.ts';
import { parseSelectorOrThrow } from '../devices/device-service.ts';

/** What the agent does when nothing is set (telemetry every 10 s, 60 s stats windows, no capture). */
export const DEFAULT_AGENT_CONFIG = {
  telemetryIntervalS: 10,
  statsWindowS: 60,
  sampleCapture: { enabled: false, maxPerMinute: 60, batchSize: 50 },
} as const satisfies AgentConfig;

export type EffectiveAgentConfig = {
  telemetryIntervalS: number;
  statsWindowS: number;
  sampleCapture: { enabled: boolean; maxPerMinute: number; batchSize: number };
};

const capture = AgentConfig.shape.sampleCapture.unwrap().shape;

/**
 * Settings as stored for one cohort or device: any subset of AgentConfig's fields with its bounds, so
 * a device may override only the capture rate of its cohort. Unknown fields are refused.
 */
export const StoredAgentSettings = z
  .object({
    telemetryIntervalS: AgentConfig.shape.telemetryIntervalS,
    statsWindowS: AgentConfig.shape.statsWindowS,
    sampleCapture: z
      .object({ enabled: capture.enabled, maxPerMinute: capture.maxPerMinute.unwrap(), batchSize: capture.batchSize.unwrap() })
      .partial()
      .strict()
      .optional(),
  })
  .strict();
export type StoredAgentSettings = z.infer<typeof StoredAgentSettings>;

export function overlay(base: EffectiveAgentConfig, s: StoredAgentSettings): EffectiveAgentConfig {
  return {
    telemetryIntervalS: s.telemetryIntervalS ?? base.telemetryIntervalS,
    statsWindowS: s.statsWindowS ?? base.statsWindowS,
    sampleCapture: { ...base.sampleCapture, ...s.sampleCapture },
  };
}

export interface Effective {
  config: EffectiveAgentConfig;
  /** The layers applied, in order: `defaults`, `cohort:<name>`…, `device:<id>`. */
  sources: string[];
}

/**
 * Effective settings of each device; `cohort` is the cohort of the device's deployment (null for a
 * direct deployment or none). One read of the settings table, cohorts and labels only when needed.
 */
export async function effectiveAgentConfigs(tx: Tx, targets: Array<{ deviceId: string; cohort: string | null }>): Promise<Map<string, Effective>> {
  const out = new Map<string, Effective>();
  if (!targets.length) return out;
  const rows = await tx.select().from(agentSettings);
  const byCohort = new Map(rows.filter((r) => r.scope === 'cohort').map((r) => [r.target, r.settings as StoredAgentSettings]));
  const byDevice = new Map(rows.filter((r) => r.scope === 'device').map((r) => [r.target, r.settings as StoredAgentSettings]));
  const undeployed = targets.filter((t) => t.cohort === null).map((t) => t.deviceId);
  const selectors =
    byCohort.size && undeployed.length
      ? (await tx.select({ name: cohorts.name, selector: cohorts.selector }).from(cohorts).where(inArray(cohorts.name, [...byCohort.keys()])))
          .map((c) => ({ name: c.name, terms: parseSelectorOrThrow(c.selector) }))
          .sort((a, b) => (a.name < b.name ? -1 : 1))
      : [];
  const labels = new Map<string, Record<string, string>>();
  if (selectors.length) {
    for (const d of await tx.select({ id: devices.id, labels: devices.labels }).from(devices).where(inIds(devices.id, undeployed))) labels.set(d.id, d.labels);
  }
  for (const { deviceId, cohort } of targets) {
    let config: EffectiveAgentConfig = structuredClone(DEFAULT_AGENT_CONFIG) as EffectiveAgentConfig;
    const sources = ['defaults'];
    const cohortNames = cohort !== null ? [cohort] : selectors.filter((s) => matches(s.terms, labels.get(deviceId) ?? {})).map((s) => s.name);
    for (const name of cohortNames) {
      const s = byCohort.get(name);
      if (!s) continue;
      config = overlay(config, s);
      sources.push(`cohort:${name}`);
    }
    const own = byDevice.get(deviceId);
    if (own) {
      config = overlay(config, own);
      sources.push(`device:${deviceId}`);
    }
    out.set(deviceId, { config, sources });
  }
  return out;
}
