// Where a storm's connects wait in the kernel: the MQTT listener's accept queue (`ss` Recv-Q, against
// its Send-Q, the backlog the kernel granted), half-open connections (SYN-RECV), and the TcpExt
// counters of /proc/net/netstat that count dropped SYNs and overflowed accept queues. The counters are
// machine-wide (other processes' listeners count too); on a machine running only the bench they are
// this storm's.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** TcpExt counters that move when a listener cannot keep up. */
const COUNTERS = ['ListenOverflows', 'ListenDrops', 'SyncookiesSent', 'SyncookiesRecv', 'SyncookiesFailed', 'TCPReqQFullDrop', 'TCPReqQFullDoCookies', 'TCPTimeouts', 'TCPSynRetrans'] as const;
export type Counters = Record<(typeof COUNTERS)[number], number>;

export async function tcpExtCounters(): Promise<Counters> {
  const lines = (await readFile('/proc/net/netstat', 'utf8')).split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  const out = {} as Counters;
  for (const c of COUNTERS) out[c] = values[names.indexOf(c)] ?? NaN;
  return out;
}

export function counterDelta(a: Counters, b: Counters): Counters {
  const out = {} as Counters;
  for (const c of COUNTERS) out[c] = b[c] - a[c];
  return out;
}

export interface QueueSample {
  at: number;
  /** Connections completed by the kernel, not yet accepted by the process. */
  acceptQueue: number;
  /** The accept queue's limit (min of the listen() backlog and net.core.somaxconn). */
  backlog: number;
  /** Half-open connections (SYN received, handshake not complete). */
  synRecv: number;
}

/** Samples the listener on `port` every `everyMs` until stop(); each sample costs two `ss` runs. */
export class ListenQueueSampler {
  readonly samples: QueueSample[] = [];
  private stopped = false;
  private done?: Promise<void>;

  constructor(
    private readonly port: number,
    private readonly everyMs = 100,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped) {
        const at = Date.now();
        const [listen, syn] = await Promise.all([
          run('ss', ['-Hltn', `sport = :${this.port}`]).then((r) => r.stdout, () => ''),
          run('ss', ['-Htn', 'state', 'syn-recv', `sport = :${this.port}`]).then((r) => r.stdout, () => ''),
        ]);
        const f = listen.trim().split(/\s+/);
        // Nothing listens between the old process's exit and the new one's listen().
        if (f.length >= 3) this.samples.push({ at, acceptQueue: Number(f[1]), backlog: Number(f[2]), synRecv: syn.split('\n').filter(Boolean).length });
        await new Promise((r) => setTimeout(r, Math.max(0, this.everyMs - (Date.now() - at))));
      }
    })();
  }

  async stop(): Promise<QueueSample[]> {
    this.stopped = true;
    await this.done;
    return this.samples;
  }
}
