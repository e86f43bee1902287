/**
 * WAV (RIFF) decoding for audio bundles: mono PCM16 or IEEE float32 samples as float32 in [-1, 1].
 * Anything else (stereo, other bit depths, compressed formats) is refused with what was found, so a
 * caller knows what to convert to.
 *
 * @example
 * const { sampleRate, samples } = decodeWav(bytes); // samples: Float32Array
 */
import { invalidInput } from './errors.ts';

export function decodeWav(bytes: Uint8Array): { sampleRate: number; samples: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw invalidInput('audio: not a WAV (RIFF/WAVE) file');
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (body + size > bytes.length && id !== 'data') break;
    if (id === 'fmt ') {
      if (size < 16) throw invalidInput('audio: WAV fmt chunk is too short');
      let format = view.getUint16(body, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the sub-format GUID's first two bytes.
      if (format === 0xfffe && size >= 26) format = view.getUint16(body + 24, true);
      fmt = { format, channels: view.getUint16(body + 2, true), sampleRate: view.getUint32(body + 4, true), bits: view.getUint16(body + 14, true) };
    } else if (id === 'data') {
      if (!fmt) throw invalidInput('audio: WAV data chunk before its fmt chunk');
      if (fmt.channels !== 1) throw invalidInput(`audio: ${fmt.channels} channels; send mono`);
      const end = Math.min(bytes.length, body + size);
      if (fmt.format === 1 && fmt.bits === 16) {
        const n = Math.floor((end - body) / 2);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = view.getInt16(body + i * 2, true) / 32768;
        return { sampleRate: fmt.sampleRate, samples: out };
      }
      if (fmt.format === 3 && fmt.bits === 32) {
        const n = Math.floor((end - body) / 4);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = view.getFloat32(body + i * 4, true);
        return { sampleRate: fmt.sampleRate, samples: out };
      }
      throw invalidInput(`audio: WAV format ${fmt.format} with ${fmt.bits}-bit samples; send PCM16 or float32`);
    }
    at = body + size + (size % 2); // chunks are word-aligned
  }
  throw invalidInput('audio: WAV file has no data chunk');
}

/**
 * A mono WAV file from float32 samples (PCM16 when `pcm16`): for tests and examples.
 *
 * @example
 * const bytes = encodeWav(Float32Array.of(0, 0.5, -0.5), 16000, true);
 */
export function encodeWav(samples: ArrayLike<number>, sampleRate: number, pcm16: boolean): Uint8Array {
  const width = pcm16 ? 2 : 4;
  const bytes = new Uint8Array(44 + samples.length * width);
  const view = new DataView(bytes.buffer);
  const put = (at: number, s: string) => bytes.set(new TextEncoder().encode(s), at);
  put(0, 'RIFF');
  view.setUint32(4, 36 + samples.length * width, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, pcm16 ? 1 : 3, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * width, true);
  view.setUint16(32, width, true);
  view.setUint16(34, width * 8, true);
  put(36, 'data');
  view.setUint32(40, samples.length * width, true);
  for (let i = 0; i < samples.length; i++) {
    if (pcm16) view.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768))), true);
    else view.setFloat32(44 + i * 4, samples[i], true);
  }
  return bytes;
}
