// A client as light as a load generator's (wrk): one keep-alive connection, a request pre-built once
// as bytes and written whole, the answer read up to its content-length with no HTTP parser objects.
// The bench times the agent's local API and the bare node:http server with it next to the node:http
// client, so the client's own cost (≈ 100 µs a request here) is not counted as the server's.
import net from 'node:net';

export interface RawHttpClient {
  /** Sends the pre-built request, resolves with the answer's status code (the body is read and dropped). */
  call(): Promise<number>;
  close(): void;
}

/** Connects to a TCP port on 127.0.0.1 or to a Unix socket path; `request` is sent on every call. */
export async function rawHttpClient(target: number | string, pathname: string, contentType: string, body: string): Promise<RawHttpClient> {
  const request = Buffer.from(`POST ${pathname} HTTP/1.1\r\nhost: localhost\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const socket = typeof target === 'number' ? net.connect(target, '127.0.0.1') : net.connect(target);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buf: Buffer = Buffer.alloc(0);
  let waiter: { resolve(status: number): void; reject(err: Error): void } | undefined;
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0 || !waiter) return;
    const head = buf.subarray(0, end).toString('latin1');
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
    if (!(length >= 0)) return waiter.reject(new Error(`answer without content-length: ${head}`));
    if (buf.length < end + 4 + length) return;
    buf = buf.subarray(end + 4 + length);
    const w = waiter;
    waiter = undefined;
    w.resolve(Number(head.slice(9, 12)));
  });
  socket.on('error', (err) => waiter?.reject(err));
  // A server may close an idle keep-alive connection (node:http after 5 s): fail the call, never hang.
  socket.on('close', () => waiter?.reject(new Error('connection closed by the server')));
  return {
    call: () =>
      new Promise<number>((resolve, reject) => {
        waiter = { resolve, reject };
        socket.write(request);
      }),
    close: () => socket.destroy(),
  };
}
