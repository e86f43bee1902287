// Progress of long operations (uploads, bundle builds, optimization) on stderr — only when stderr is a
// terminal and --json is off, so scripts and pipes see nothing but the result. One line, redrawn in place.
import { Transform } from 'node:stream';
import { size } from './human.ts';
import type { Output } from './output.ts';

const shown = (out: Output) => Boolean(process.stderr.isTTY) && !out.json;
const draw = (text: string) => process.stderr.write(`\r\x1b[2K${text}`);

/** A Transform that counts bytes through it and draws "uploading model.onnx 45 % (12.3 MB of 27.0 MB)". */
export function byteProgress(out: Output, label: string, total: number): Transform {
  let sent = 0;
  let last = 0;
  const on = shown(out);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      const now = Date.now();
      if (on && (now - last > 100 || sent === total)) {
        last = now;
        draw(`${label} ${total ? Math.floor((sent / total) * 100) : 100} % (${size(sent)} of ${size(total)})`);
      }
      cb(null, chunk);
    },
    flush(cb) {
      if (on) draw(`${label} done (${size(sent)}), waiting for the server…`);
      cb();
    },
  });
}

/** Shows "<label> 3 s" ticking while `work` runs (a single long request: bundle build, optimize). */
export async function withSpinner<T>(out: Output, label: string, work: Promise<T>): Promise<T> {
  if (!shown(out)) return work;
  const started = Date.now();
  const tick = () => draw(`${label} ${Math.round((Date.now() - started) / 1000)} s`);
  tick();
  const timer = setInterval(tick, 1000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    draw('');
  }
}

/** Clears the progress line before the result is printed. */
export function endProgress(out: Output): void {
  if (shown(out)) draw('');
}
