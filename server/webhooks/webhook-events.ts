// What a webhook subscription may ask for: the event log's types except device presence and update
// states (per-device traffic, not something a team automates on), `kind.*` patterns, `*`, and two
// aliases named after what they mean (`rollout.started`, `job.finished`).
import { Invalid } from '../errors.ts';
import type { EventType } from '../events/event-types.ts';

export const WEBHOOK_EVENTS = [
  'model.version_registered',
  'model.alias_moved',
  'model.version_rejected',
  'model.version_overridden',
  'deployment.created',
  'rollout.created',
  'rollout.stage_advanced',
  'rollout.paused',
  'rollout.resumed',
  'rollout.rolled_back',
  'rollout.completed',
  'rollout.aborted',
  'alert.opened',
  'alert.closed',
  'job.succeeded',
  'job.failed',
  'job.cancelled',
] as const satisfies readonly EventType[];

export const WEBHOOK_KINDS = ['model', 'deployment', 'rollout', 'alert', 'job'] as const;

const ALIASES: Record<string, string[]> = {
  'rollout.started': ['rollout.created'],
  'job.finished': ['job.succeeded', 'job.failed', 'job.cancelled'],
};

/** The filter as stored: aliases expanded, duplicates removed; an unknown name is a 400 listing the valid ones. */
export function normalizeFilter(names: string[]): string[] {
  const out = new Set<string>();
  const bad: string[] = [];
  for (const raw of names) {
    const name = raw.trim();
    if (ALIASES[name]) ALIASES[name].forEach((n) => out.add(n));
    else if (name === '*' || (WEBHOOK_EVENTS as readonly string[]).includes(name) || (name.endsWith('.*') && (WEBHOOK_KINDS as readonly string[]).includes(name.slice(0, -2)))) out.add(name);
    else bad.push(raw);
  }
  if (bad.length) {
    throw Invalid(`unknown event name(s) ${bad.map((b) => `"${b}"`).join(', ')}`, {
      unknown: bad,
      valid: [...WEBHOOK_EVENTS, ...Object.keys(ALIASES), ...WEBHOOK_KINDS.map((k) => `${k}.*`), '*'],
    });
  }
  if (!out.size) throw Invalid('the event filter is empty: name at least one event, e.g. rollout.*', { valid: [...WEBHOOK_EVENTS] });
  return [...out];
}

/** Whether an event of `type` goes to a subscription with `filter` (device events never do). */
export function filterMatches(filter: readonly string[], type: string): boolean {
  if (!(WEBHOOK_EVENTS as readonly string[]).includes(type)) return false;
  return filter.some((f) => f === '*' || f === type || (f.endsWith('.*') && type.startsWith(f.slice(0, -1))));
}
