// A simulator run as a child process (`simulator/main.ts --progress json`), for the scale bench and the
// simulator's test: its latest progress line, the tail of its stderr, and its exit.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { FleetProgress } from './fleet.ts';

const REPO = path.join(import.meta.dirname, '..');

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
    this.proc = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'simulator', 'main.ts'), '--progress', 'json', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
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
