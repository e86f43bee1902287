// Download splay: how long an accepted update waits before fetching its files. A deployment reaches a
// whole fleet within seconds (one retained message per device), so without a spread every device asks
// the artifact server at once (bench/RESULTS.md, "Downloads in a herd"). Each device draws its own wait,
// uniform in [0, splay); the draw is capped at half the update's time bound so the wait can never take
// the time the download itself is given.

export function splayDelayMs(splayMs: number, updateTimeoutMs: number, random: () => number = Math.random): number {
  const window = Math.min(splayMs, Math.floor(updateTimeoutMs / 2));
  return window > 0 ? Math.floor(random() * window) : 0;
}
