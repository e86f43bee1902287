/**
 * The local API on a Unix domain socket (`--api-socket <path>`), next to its TCP port. A gateway's
 * clients run on the same host, and a Unix socket skips the TCP/IP stack: ≈ 40 µs less a round
 * trip than loopback TCP here (agent/README.md, "Local API latency"). Who may connect is decided by
 * the socket file's permissions and its folder's, like any file.
 *
 * A socket file left by an agent that was killed (kill -9, power loss) would make listen() fail with
 * EADDRINUSE; if nothing answers on it, it is stale and is replaced. If something does answer,
 * another process serves that path and the agent refuses to start rather than steal it.
 *
 * @example
 * const server = await listenOnSocket(createServer(handler), '/run/flotilla-agent/api.sock');
 */
import { connect, type Server } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';

/** Listens on `path`, replacing a stale socket file; rejects if another process listens there or the path is not a socket. */
export async function listenOnSocket<S extends Server>(server: S, path: string): Promise<S> {
  try {
    await listen(server, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw socketError(path, err as Error);
    const stat = await lstat(path).catch(() => undefined);
    if (stat && !stat.isSocket()) throw new Error(`--api-socket ${path}: the path exists and is not a socket`);
    if (await answers(path)) throw new Error(`--api-socket ${path}: another process is listening on it`);
    await unlink(path).catch(() => {});
    await listen(server, path).catch((e: Error) => {
      throw socketError(path, e);
    });
  }
  return server;
}

function socketError(path: string, err: Error): Error {
  return new Error(`--api-socket ${path}: ${err.message}`);
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Whether a process accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
