/**
 * Shared fixtures for this folder's tests: keys, a key list, manifest payloads, and tiny ONNX models
 * with the demo models' input/output names. Test-only; nothing in the library imports it.
 *
 * @example
 * const f = makeTrust(); const env = signManifest(manifestPayload(f), [f.releaseA]);
 */
import { encodeModel, floatTensor, node, valueInfo } from '../../server/onnx/build.ts';
import { generateKeyPair, type KeyPair } from '../keys.ts';
import { createKeyList, signKeyList, type KeyList } from '../key-list.ts';
import { createManifest, type DeploymentManifest } from '../manifest.ts';
import type { SignedEnvelope } from '../envelope.ts';

export const NOW = new Date('2030-06-01T12:00:00.000Z');
export const DEVICE = 'dev_abcdefgh1';
export const days = (n: number, from: Date = NOW) => new Date(from.getTime() + n * 86_400_000);
export const HEX_A = 'a'.repeat(64);
export const HEX_B = 'b'.repeat(64);

export interface Trust {
  root: KeyPair;
  releaseA: KeyPair;
  releaseB: KeyPair;
  outsider: KeyPair;
  keylist: KeyList;
  keylistEnvelope: SignedEnvelope<KeyList>;
}

/** A root, two release keys, an outsider key, and key list v1 = { A } signed by the root. */
export function makeTrust(): Trust {
  const [root, releaseA, releaseB, outsider] = [generateKeyPair(), generateKeyPair(), generateKeyPair(), generateKeyPair()];
  const keylist = createKeyList({ version: 1, root, keys: [releaseA], expiresAt: days(365), now: days(-1) });
  return { root, releaseA, releaseB, outsider, keylist, keylistEnvelope: signKeyList(keylist, root.privateKeyPem) };
}

export function manifestPayload(overrides: Partial<Parameters<typeof createManifest>[0]> = {}): DeploymentManifest {
  return createManifest({
    deviceId: DEVICE,
    bundle: { id: 'bnd_1', name: 'tabular-demo', model: { name: 'tabular-demo', version: 3 } },
    files: [
      { path: 'model.onnx', sha256: HEX_A, size: 1234 },
      { path: 'bundle.json', sha256: HEX_B, size: 567 },
    ],
    minAgentVersion: '0.1.0',
    counter: 10,
    keylistVersion: 1,
    expiresAt: days(7),
    now: days(-0.5),
    ...overrides,
  });
}

/** features [batch, 8] → Gemm → logits [batch, 3]; `bump` changes one weight. */
export function tabularModel(opts: { bump?: number; inputName?: string; nFeatures?: number } = {}): Uint8Array {
  const n = opts.nFeatures ?? 8;
  const w = Array.from({ length: n * 3 }, (_, i) => Math.sin(i + 1) * 0.5);
  w[5] += opts.bump ?? 0;
  const input = opts.inputName ?? 'features';
  return encodeModel({
    inputs: [valueInfo(input, 'float32', ['batch', n])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('W', [n, 3], w), floatTensor('b', [3], [0.1, -0.2, 0.3])],
    nodes: [node('Gemm', [input, 'W', 'b'], ['logits'])],
  });
}

/** image [batch, 3, 32, 32] → mean over H, W → MatMul 3×3 + bias → logits [batch, 3]. */
export function imageModel(opts: { bump?: number } = {}): Uint8Array {
  const w = [1, -0.5, 0.25, 0.3, 0.8, -1, -0.7, 0.2, 0.9];
  w[4] += opts.bump ?? 0;
  return encodeModel({
    inputs: [valueInfo('image', 'float32', ['batch', 3, 32, 32])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('W', [3, 3], w), floatTensor('b', [3], [0, 0.1, -0.1])],
    nodes: [
      node('ReduceMean', ['image'], ['pooled'], { axes: [2, 3], keepdims: 0 }),
      node('Gemm', ['pooled', 'W', 'b'], ['logits']),
    ],
  });
}
