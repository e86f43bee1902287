// Starts the compiled control plane (bin/flotilla-server.js) as a child process, the way a replica
// runs in production: its own process, its own connections to the shared database and broker.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Replica {
  child: ChildProcess;
  url: string;
  exited: Promise<void>;
  /** Everything the replica wrote to stdout and stderr so far (pino JSON lines). */
  output(): string;
}

export async function startReplica(env: Record<string, string>): Promise<Replica> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/flotilla-server.js')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, FLOTILLA_HTTP_HOST: '127.0.0.1', FLOTILLA_HTTP_PORT: '0', FLOTILLA_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"http":(\d+).*"msg":"control plane started"/.exec(out);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    void exited.then(() => reject(new Error(`replica exited before it started:\n${out.slice(-2000)}`)));
    setTimeout(() => reject(new Error(`replica did not start in time:\n${out.slice(-2000)}`)), 60_000).unref();
  });
  return { child, url, exited, output: () => out };
}

/** A counter or gauge from the replica's /metrics (0 when absent). */
export async function replicaMetric(r: Replica, name: string, labels: string): Promise<number> {
  const text = await fetch(`${r.url}/metrics`).then((res) => res.text());
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
