// What the event stream carries: kinds, types and the data of each (the contract the console and the
// CLI read). The kind is the type's prefix, so filtering by kind never needs a lookup table.
import { z } from '@hono/zod-openapi';

export const EVENT_KINDS = ['device', 'deployment', 'rollout', 'alert', 'job', 'model'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

interface DeviceUpdate {
  state: string;
  /** The bundle the device runs (its active bundle), if any. */
  bundleId?: string;
  /** `name@N` of the model version the active bundle carries. */
  modelVersion?: string;
  /** The bundle the device works on (its current manifest), when it reports one. */
  desiredBundleId?: string;
  error?: { code: string; message: string };
}
type RolloutData = { rolloutId: string } & Record<string, unknown>;
type JobData = { jobId: string; model: string } & Record<string, unknown>;
/** Subject `name@N`. */
type VersionData = { model: string; version: number };

/** Every event type with the shape of its data. */
export interface EventData {
  'device.online': Record<string, never>;
  'device.offline': Record<string, never>;
  'device.update': DeviceUpdate;
  'device.enrolled': { status: string; labels: Record<string, string> };
  'device.approved': Record<string, never>;
  'device.revoked': Record<string, never>;
  'device.labels': { labels: Record<string, string> };
  'deployment.created': { deploymentId: string; bundleId: string; target: { kind: 'cohort' | 'device'; name: string }; devices: number };
  'rollout.created': RolloutData;
  'rollout.stage_advanced': RolloutData & { stage: number };
  'rollout.paused': RolloutData;
  'rollout.resumed': RolloutData;
  'rollout.completed': RolloutData;
  'rollout.aborted': RolloutData;
  'rollout.rolled_back': RolloutData;
  'alert.opened': { alertId: string; cohort: string; model: string; version: number };
  'alert.closed': { alertId: string; cohort: string; model: string; version: number };
  'job.queued': JobData;
  'job.running': JobData;
  'job.waiting': JobData;
  'job.succeeded': JobData;
  'job.failed': JobData;
  'job.cancelled': JobData;
  'model.version_registered': VersionData & { status: string; parent?: string; variant?: string; by: string };
  'model.version_rejected': VersionData & { reason: string };
  'model.version_overridden': VersionData & { by: string; reason: string };
  'model.alias_moved': VersionData & { alias: string; from: number | null; by: string };
}
export type EventType = keyof EventData;

export function kindOf(type: EventType): EventKind {
  return type.slice(0, type.indexOf('.')) as EventKind;
}

/** One event as the API returns it (and as each SSE message's data). */
export const Event = z
  .object({
    id: z.number().int(),
    kind: z.enum(EVENT_KINDS),
    type: z.string().openapi({ example: 'device.update' }),
    at: z.string(),
    subject: z.string().openapi({ description: 'id of the device, deployment, rollout, alert or job; `name@N` (or `name@alias`) for model events' }),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('Event');
export type EventView = z.infer<typeof Event>;

/** `device,rollout` → kinds; an unknown kind is a 400 naming the valid ones. */
export const KindList = z
  .string()
  .optional()
  .transform((s, ctx) => {
    if (!s) return [...EVENT_KINDS];
    const kinds = s.split(',').map((k) => k.trim()).filter(Boolean);
    const bad = kinds.filter((k) => !(EVENT_KINDS as readonly string[]).includes(k));
    if (bad.length) {
      ctx.addIssue({ code: 'custom', message: `unknown event kind(s) ${bad.join(', ')}: use ${EVENT_KINDS.join(', ')}` });
      return z.NEVER;
    }
    return kinds as EventKind[];
  })
  .openapi({ type: 'string', description: `comma list of ${EVENT_KINDS.join(', ')} (default all)`, example: 'device,rollout' });
