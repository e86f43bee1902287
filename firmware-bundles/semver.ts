/**
 * The little semver the agent-version check needs: `x.y.z` with an optional `-prerelease` (lower than
 * the release) and `+build` (ignored). Written here rather than imported so the agent stays small.
 *
 * @example
 * compareVersions('0.2.0', '0.10.0') // -1
 * compareVersions('1.0.0-rc.1', '1.0.0') // -1
 */
const SEMVER = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * Whether a string is a version `compareVersions` understands.
 *
 * @example
 * isVersion('0.1.0') // true
 */
export function isVersion(version: string): boolean {
  return SEMVER.test(version);
}

/**
 * Compares two versions: negative if a < b, 0 if equal, positive if a > b. Prerelease tags compare
 * as plain strings, enough for ordering `-rc.1` against the release.
 *
 * @example
 * compareVersions(agentVersion, manifest.minAgentVersion) < 0 // agent too old
 */
export function compareVersions(a: string, b: string): number {
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < 3; i++) if (pa.core[i] !== pb.core[i]) return Math.sign(pa.core[i] - pb.core[i]);
  if (pa.pre === pb.pre) return 0;
  if (pa.pre === undefined) return 1;
  if (pb.pre === undefined) return -1;
  return pa.pre < pb.pre ? -1 : 1;
}

function parse(version: string): { core: number[]; pre: string | undefined } {
  const m = SEMVER.exec(version);
  if (!m) throw new TypeError(`not a version: ${JSON.stringify(version)}`);
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] };
}
