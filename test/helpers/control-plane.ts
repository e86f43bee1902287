// Starts a real control plane (HTTP + embedded broker on ephemeral ports, libsql file in a temp dir).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ControlPlane } from '../../server/control-plane.ts';
import { loadServerConfig, type ServerConfig } from '../../server/env.ts';
import { createLogger } from '../../server/logger.ts';

export interface TestPlane {
  plane: ControlPlane;
  url: string;
  mqttUrl: string;
  adminToken: string;
  dataDir: string;
  api(method: string, pathname: string, opts?: { token?: string | null; json?: unknown; body?: BodyInit; headers?: Record<string, string> }): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startControlPlane(overrides: Partial<ServerConfig> = {}): Promise<TestPlane> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-test-'));
  const config = {
    ...loadServerConfig({ FLOTILLA_DATA_DIR: dataDir }),
    httpHost: '127.0.0.1',
    httpPort: 0,
    mqttHost: '127.0.0.1',
    mqttPort: 0,
    ...overrides,
  };
  const plane = new ControlPlane(config, createLogger(process.env.FLOTILLA_TEST_LOG ?? 'silent'));
  await plane.start();
  const url = plane.httpUrl;
  const adminToken = plane.adminToken!;
  const handle: TestPlane = {
    plane,
    url,
    mqttUrl: plane.mqttUrl,
    adminToken,
    dataDir,
    async api(method, pathname, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      const token = opts.token === undefined ? adminToken : opts.token;
      if (token) headers.authorization = `Bearer ${token}`;
      let body = opts.body;
      if (opts.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(opts.json);
      }
      const res = await fetch(url + pathname, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        /* keep text */
      }
      return { status: res.status, body: parsed as any };
    },
    async stop() {
      await handle.plane.stop(); // the plane a test may have restarted, not necessarily the first one
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}
