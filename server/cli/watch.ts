// `--watch`: run a command's fetch-and-render again every interval. On a terminal the screen is
// redrawn in place; piped, each refresh is appended (with --json: one JSON object per line), so a
// script can follow it. Ctrl-C ends it with exit 0; `done` ends it when the watched thing is finished.
import { emit, type Output } from './output.ts';

export interface WatchFrame {
  data: unknown;
  human: () => string;
  /** The watched thing reached a final state: print this frame and stop. */
  done?: boolean;
}

export async function watch(out: Output, requestedS: number, frame: () => Promise<WatchFrame>): Promise<void> {
  const intervalS = Math.max(1, requestedS); // --interval 0 would hammer the server
  const tty = Boolean(process.stdout.isTTY) && !out.json;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!stopped) {
      const f = await frame();
      if (out.json) process.stdout.write(JSON.stringify(f.data) + '\n');
      else if (tty) process.stdout.write(`\x1b[H\x1b[2J${f.human()}\n\nrefreshing every ${intervalS} s — Ctrl-C to stop\n`);
      else emit(out, f.data, () => `--- ${new Date().toISOString()}\n${f.human()}`);
      if (f.done) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, intervalS * 1000);
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
