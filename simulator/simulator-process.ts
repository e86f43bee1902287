// A simulator run as a child process (compiled `simulator/main.ts --progress json`), for the scale bench and the
// simulator's test: its latest progress line, the tail of its stderr, and its exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { FleetProgress } from './fleet.ts';

const REPO = path.join(import.meta.dirname, '..');
// The compiled simulator (scripts/build.mjs; `npm test` and `npm run bench` build first), as the tests
// run the compiled agent and CLI: from source through tsx each process spent ≈ 1.5 s of CPU loading
// before it simulated anything, compiled ≈ 0.3 s (measured on this 2-core machine).
// BENCH_SIM_BUNDLE: another build of it (a before/after comparison in one bench run).
const BUNDLE = process.env.BENCH_SIM_BUNDLE ?? path.join(REPO, 'dist', 'simulator', 'flotilla-simulate.js');

/** One JSON progress line (simulator/main.ts). */
export interface SimulatorProgress extends FleetProgress {
  msgPerS: number;
  /** The simulator process's CPU time so far (user + system), ms. */
  cpuMs: number;
  startFailures: number;
}

export class SimulatorProcess {
  readonly proc: ChildProcess;
  last: SimulatorProgress | null = null;
  /** The last 4,000 characters of its stderr. */
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\``);
    this.proc = spawn(process.execPath, [BUNDLE, '--progress', 'json', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.last = JSON.parse(line) as SimulatorProgress;
        } catch {
          /* not a progress line */
        }
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }

  /** SIGTERM (a clean stop: devices go offline) unless it already ended; resolves with its exit code. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    return this.exited;
  }
}
