// onnxruntime-web for the playground, loaded on first use (its JS and wasm never reach other pages).
// Single-threaded wasm: no worker pool to start, and the answer does not depend on thread count.
// The wasm file is emitted by Vite from the package (served by the console's build, no CDN).
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';

type Ort = typeof import('onnxruntime-web/wasm');
let loading: Promise<Ort> | undefined;

export function loadOrt(): Promise<Ort> {
  return (loading ??= import('onnxruntime-web/wasm').then((ort) => {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = { wasm: new URL(wasmUrl, location.href).href };
    return ort;
  }));
}

/** A tensor as the playground passes it around (what the agent's runtime calls a HostTensor). */
export interface PlainTensor {
  type: string;
  dims: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | number[];
}

export interface BrowserSession {
  run(feeds: Record<string, PlainTensor>): Promise<{ outputs: Record<string, PlainTensor>; ms: number }>;
  release(): Promise<void>;
}

/** A session on the model's bytes (wasm execution provider). */
export async function createSession(bytes: Uint8Array): Promise<BrowserSession> {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  return {
    async run(feeds) {
      const input: Record<string, InstanceType<Ort['Tensor']>> = {};
      for (const [name, t] of Object.entries(feeds)) input[name] = new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims);
      const t0 = performance.now();
      const out = await session.run(input);
      const ms = performance.now() - t0;
      const outputs: Record<string, PlainTensor> = {};
      for (const [name, t] of Object.entries(out)) outputs[name] = { type: t.type, dims: [...t.dims], data: t.data as PlainTensor['data'] };
      return { outputs, ms };
    },
    release: () => session.release(),
  };
}
