// The tabular demo bundle that the agent benches deploy: root keys, the model, a reference profile first
// (so the bundle ships its layout and the agents sketch every request's 8 features and its output, input
// statistics on as by default), then the bundle itself. Returns the root public key agents pin.
import path from 'node:path';
import type { TestPlane } from '../test/helpers/control-plane.ts';
import { generateRows } from '../test/helpers/device-stats.ts';

export const TABULAR_DEMO_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

export async function publishTabularDemo(cp: TestPlane, cli: (...args: string[]) => Promise<any>, dir: string, modelPath: string): Promise<{ rootPublicKey: string }> {
  const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
  await cli('models', 'push', modelPath, '--name', 'tabular-demo');
  const reference = generateRows(2000, 1).map((r) => ({ ...r.values, outputs: { predictedClass: r.predictedClass, confidence: r.confidence } }));
  const ref = await cp.api('POST', '/api/v1/models/tabular-demo/versions/1/reference', { json: reference });
  if (ref.status !== 201) throw new Error(`reference: ${JSON.stringify(ref.body)}`);
  await cli('bundles', 'build', 'tabular-demo@1', '--def', TABULAR_DEMO_DEF);
  return { rootPublicKey: keys.rootPublicKey };
}
