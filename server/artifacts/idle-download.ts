// A download whose client stops reading would hold its download slot for as long as the connection
// lives: the server's write waits for the socket to drain, which never happens. This watches the
// connection's progress — bytes the kernel took from the socket (written minus still buffered) — while
// something waits to be taken, and calls `onIdle` once nothing moved for `idleMs`. A slow client that
// keeps taking bytes is never idle; a server slow to read its own file is not counted against the client
// (nothing is buffered then).
import type { Socket } from 'node:net';

/** Starts watching; returns the stop function (call it when the download ends either way). */
export function watchIdleDownload(socket: Socket, idleMs: number, onIdle: () => void): () => void {
  const taken = () => socket.bytesWritten - socket.writableLength;
  let last = taken();
  let since = Date.now();
  const timer = setInterval(
    () => {
      const now = taken();
      if (now !== last || socket.writableLength === 0) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since >= idleMs) {
        clearInterval(timer);
        onIdle();
      }
    },
    Math.max(50, Math.min(1000, idleMs / 4)),
  );
  timer.unref();
  return () => clearInterval(timer);
}
