/**
 * Which of the agent's native add-ons this process has loaded, from the shared objects it has mapped
 * (/proc/self/maps, so a worker thread's loads count too). The agent loads them only when needed —
 * onnxruntime-node with the first model, sharp with the first image — so an idle agent should show
 * none; `GET /v1/status` → `memory.native` lets a device (and a test) check that in place.
 * Elsewhere than Linux the answer is `null` (unknown), never a guess.
 */
import { readFileSync } from 'node:fs';

const ADDONS: Array<[name: string, file: RegExp]> = [
  ['onnxruntime', /\/onnxruntime_binding\.node$/],
  ['sharp', /\/sharp-[^/]*\.node$/],
];

export function loadedNativeModules(): string[] | null {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return null;
  }
  const files = [...new Set(maps.split('\n').filter((line) => line.includes('/')).map((line) => line.slice(line.indexOf('/'))))];
  return ADDONS.filter(([, file]) => files.some((f) => file.test(f))).map(([name]) => name);
}
