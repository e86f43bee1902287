// Device order within a rollout's cohort: by sha256 of the device id. It depends on nothing but the
// id, so a stage's devices are the same on every run, restart or replica, and a device that joins the
// cohort later takes its own fixed place instead of shifting everyone else.
import { createHash } from 'node:crypto';

export function stableOrder(deviceIds: readonly string[]): string[] {
  const keyed = deviceIds.map((id) => ({ id, key: createHash('sha256').update(id).digest('hex') }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id.localeCompare(b.id)));
  return keyed.map((k) => k.id);
}

/** Devices in a stage covering `fraction` of `n`: at least one when there are devices at all. */
export function stageSize(n: number, fraction: number): number {
  if (n === 0) return 0;
  return Math.min(n, Math.max(1, Math.ceil(fraction * n - 1e-9)));
}
