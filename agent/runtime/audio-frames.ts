/**
 * Audio for an audio `tensor` bundle: a WAV body decoded (wav.ts), checked against the bundle's
 * sample rate, and cut into frames of the bundle's frame length (the last one zero-padded), each
 * shaped as the model's frame input (e.g. [1, 512]).
 *
 * @example
 * const frames = audioFrames(spec, wavBytes, [1, 512]); // Float32Array[] of 512 samples each
 */
import type { TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { invalidInput } from './errors.ts';
import { decodeWav } from './wav.ts';

/** Longest audio one request may carry, in frames (a 512-sample frame at 16 kHz: ≈ 5 minutes). */
export const MAX_FRAMES = 10_000;

export function audioFrames(spec: TensorPreprocess, body: unknown): Float32Array[] {
  const audio = spec.audio;
  if (!audio) throw invalidInput('this model takes "inputs" (named tensors), not audio: its definition declares no audio input');
  if (!(body instanceof Uint8Array)) throw invalidInput('audio must be WAV bytes (content type audio/wav)');
  const { sampleRate, samples } = decodeWav(body);
  if (sampleRate !== audio.sampleRate) throw invalidInput(`audio: ${sampleRate} Hz; this model takes ${audio.sampleRate} Hz mono (resample before sending)`);
  if (samples.length === 0) throw invalidInput('audio: no samples');
  const count = Math.ceil(samples.length / audio.frameLength);
  if (count > MAX_FRAMES) throw invalidInput(`audio: ${count} frames, at most ${MAX_FRAMES} per request`);
  const frames: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const frame = new Float32Array(audio.frameLength);
    frame.set(samples.subarray(i * audio.frameLength, (i + 1) * audio.frameLength));
    frames.push(frame);
  }
  return frames;
}
