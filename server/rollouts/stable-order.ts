// Device order within a rollout's cohort: by sha256 of the device id. It depends on nothing but the
// id, so a stage's devices are the same on every run, restart or replica, and a device that joins the
// cohort later takes its own fixed place instead of shifting everyone else.
import { createHash } from 'node:crypto';

/** Each id's hash, kept: every rollout tick orders its cohort (10,000 hashes: 20–40 ms on the shared machine). Bounded. */
const keys = new Map<string, string>();
const KEPT_KEYS = 200_000;

function keyOf(id: string): string {
  let key = keys.get(id);
  if (key === undefined) {
    if (keys.size >= KEPT_KEYS) keys.clear();
    key = createHash('sha256').update(id).digest('hex');
    keys.set(id, key);
  }
  return key;
}

export function stableOrder(deviceIds: readonly string[]): string[] {
  const keyed = deviceIds.map((id) => ({ id, key: keyOf(id) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id.localeCompare(b.id)));
  return keyed.map((k) => k.id);
}

/** Devices in a stage covering `fraction` of `n`: at least one when there are devices at all. */
export function stageSize(n: number, fraction: number): number {
  if (n === 0) return 0;
  return Math.min(n, Math.max(1, Math.ceil(fraction * n - 1e-9)));
}
