// One assignment signs the same manifest for thousands of devices, differing only in `deviceId` and
// `counter`. Canonicalizing (what is signed) and printing (what is stored and published) each whole
// manifest per device cost as much as the signature itself, so both texts are made once from the
// template with markers in those two places, and each device's texts are the pieces around the
// markers joined with its own values. The result is byte for byte canonicalize() and JSON.stringify()
// of the device's manifest (manifest-stamp.test.ts); a template whose texts do not split cleanly
// (a marker also found elsewhere) falls back to serializing each manifest whole.
import { canonicalize } from '../../firmware-bundles/canonical-json.ts';
import type { DeploymentManifest } from '../../firmware-bundles/manifest.ts';

// Control characters: escaped in both texts, and refused in device ids, so no real value holds them.
const DEVICE = '\u0001flotilla-device-id\u0001';
const COUNTER = '\u0001flotilla-counter\u0001';

/** A device's manifest as the two texts assignment needs: canonical (to sign) and JSON (to store and publish). */
export interface StampedManifest {
  canonical: string;
  json: string;
}

export type ManifestStamp = (deviceId: string, counter: number) => StampedManifest;

/** Pieces of `text` around the two markers' serialized forms, in the order they occur; null unless each occurs once. */
function splitAround(text: string, device: string, counter: string): ((deviceId: string, counter: string) => string) | null {
  const d = text.indexOf(device);
  const c = text.indexOf(counter);
  if (d < 0 || c < 0 || text.indexOf(device, d + 1) >= 0 || text.indexOf(counter, c + 1) >= 0) return null;
  const deviceFirst = d < c;
  const [i, il, j, jl] = deviceFirst ? [d, device.length, c, counter.length] : [c, counter.length, d, device.length];
  const a = text.slice(0, i);
  const b = text.slice(i + il, j);
  const z = text.slice(j + jl);
  return deviceFirst ? (dv, cv) => a + dv + b + cv + z : (dv, cv) => a + cv + b + dv + z;
}

/** The stamp for `template` (any deviceId and counter in it are replaced). */
export function manifestStamp(template: DeploymentManifest): ManifestStamp {
  const marked = { ...template, deviceId: DEVICE, counter: COUNTER } as unknown as DeploymentManifest;
  const canonical = splitAround(canonicalize(marked), canonicalize(DEVICE), canonicalize(COUNTER));
  const json = splitAround(JSON.stringify(marked), JSON.stringify(DEVICE), JSON.stringify(COUNTER));
  if (!canonical || !json) {
    return (deviceId, counter) => {
      const m = { ...template, deviceId, counter };
      return { canonical: canonicalize(m), json: JSON.stringify(m) };
    };
  }
  // A device id or counter canonicalizes as JSON.stringify prints it (canonicalize still checks it).
  return (deviceId, counter) => {
    const d = canonicalize(deviceId);
    const c = canonicalize(counter);
    return { canonical: canonical(d, c), json: json(d, c) };
  };
}
