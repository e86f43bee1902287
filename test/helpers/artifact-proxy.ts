// A small HTTP proxy in front of a control plane, set as an agent's --artifact-url (a mirror): it forwards
// every request, and lets a test decide what an artifact request gets (record it, drop it, refuse it, hold it).
import http from 'node:http';

export class ArtifactProxy {
  /** The control plane's URL, set once it runs. */
  target = '';
  url = '';
  private readonly server = http.createServer((req, res) => {
    if (req.url?.startsWith('/artifacts/')) return this.artifact(req, res);
    this.forward(req, res);
  });

  /** What an artifact request gets: forwarded unless a subclass says otherwise. */
  protected artifact(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.forward(req, res);
  }

  protected forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const up = http.request(new URL(req.url!, this.target), { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
