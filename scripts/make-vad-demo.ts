/**
 * A voice-activity detector and audio to try it with, built in code (nothing downloaded):
 *
 *   silero_vad.onnx  the inputs, outputs and carried state of the public Silero VAD v5 (`input` float32
 *                    [1, 512], `sr` int64, `state` [2, 1, 128] → `output` [1, 1], `stateN`); its speech probability
 *                    follows the frame's energy (server/onnx/vad-shaped-model.ts); firmware-bundles/vad-demo takes it
 *   frames.npy       n frames float32 [n, 512], unlabelled
 *   frames.npz       the same frames as `input` with `label` (1 speech, 0 silence)
 *   frames.jsonl     the same as JSON lines of named tensors: {"inputs": {"input": {dims, data}}, "label"}
 *   frame.json       one local API request body: {"inputs": {"input": …}, "session": "mic-1"}
 *   speech.wav       a quarter second of 16 kHz mono PCM16 (tones with noise)
 *
 * Speech frames are tones (120–400 Hz) with noise, silence frames faint noise, alternating.
 *
 * Usage: npm run demo:vad -- [outDir=.] [--n 32]
 * (relative paths are taken from the folder npm was started in)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { zipSync } from 'fflate';
import { encodeWav } from '../agent/runtime/wav.ts';
import { mulberry32 } from '../protocol/sketch/random.ts';
import { encodeNpy } from '../server/datasets/npy.ts';
import { energyVadModel } from '../server/onnx/vad-shaped-model.ts';

const FRAME = 512;
const RATE = 16000;

/** `length` samples of a tone with noise (speech) or faint noise (silence), in [-1, 1]. */
function audio(length: number, speech: boolean, seed: number): number[] {
  const rand = mulberry32(seed);
  const hz = 120 + rand() * 280;
  const amplitude = speech ? 0.2 + rand() * 0.4 : 0;
  return Array.from({ length }, (_, i) => Math.fround(amplitude * Math.sin((2 * Math.PI * hz * i) / RATE) + (rand() * 2 - 1) * (speech ? 0.05 : 0.01)));
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { n: { type: 'string', default: '32' } } });
const n = Number(values.n);
if (!Number.isInteger(n) || n < 2) throw new Error(`--n ${values.n}: a whole number of frames, at least 2`);
const outDir = resolve(process.env.INIT_CWD ?? process.cwd(), positionals[0] ?? '.');
await mkdir(outDir, { recursive: true });

const labels = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : 0));
const frames = labels.map((l, i) => audio(FRAME, l === 1, 1000 + i));
const input = encodeNpy({ dtype: 'float32', shape: [n, FRAME], data: frames.flat() });
const files: Record<string, Uint8Array | string> = {
  'silero_vad.onnx': energyVadModel(),
  'frames.npy': input,
  'frames.npz': zipSync({ 'input.npy': input, 'label.npy': encodeNpy({ dtype: 'int64', shape: [n], data: labels }) }),
  'frames.jsonl': frames.map((f, i) => JSON.stringify({ inputs: { input: { dims: [1, FRAME], data: f } }, label: labels[i] })).join('\n') + '\n',
  'frame.json': JSON.stringify({ inputs: { input: { dims: [1, FRAME], data: frames[0] } }, session: 'mic-1' }) + '\n',
  'speech.wav': encodeWav(audio(RATE / 4, true, 7), RATE, true),
};
for (const [name, bytes] of Object.entries(files)) await writeFile(join(outDir, name), bytes);
console.log(`wrote ${Object.keys(files).join(', ')} (${n} frames) to ${outDir}`);
