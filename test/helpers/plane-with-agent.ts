// A control plane (test/helpers/control-plane.ts) with signing keys made by `flotilla keys init` and one
// real agent process enrolled in it (labels site=<site>), for tests that push models through the whole
// loop. The agent runs with short probation, reconnect and stats windows so a deploy settles quickly.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, api, freePort, waitFor } from '../../agent/testing/harness.ts';
import type { ServerConfig } from '../../server/env.ts';
import { cliJson } from './cli.ts';
import { startControlPlane, type TestPlane } from './control-plane.ts';

export interface PlaneWithAgent {
  cp: TestPlane;
  /** A temp dir for the test's files (removed by stop()). */
  dir: string;
  /** The CLI's environment for this control plane. */
  env: Record<string, string>;
  /** `flotilla --json <args>` against this control plane: asserts exit 0, returns the parsed output. */
  cli(...args: string[]): Promise<any>;
  agent: AgentProcess;
  /** The agent's local API port. */
  port: number;
  deviceId: string;
  stop(): Promise<void>;
}

export async function startPlaneWithAgent(o: { site: string; prefix: string; plane?: Partial<ServerConfig>; agentArgs?: string[] }): Promise<PlaneWithAgent> {
  const cp = await startControlPlane({ driftCron: 'off', ingestFlushMs: 50, ...o.plane });
  const dir = await mkdtemp(path.join(tmpdir(), o.prefix));
  const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  const cli = (...args: string[]) => cliJson(env, ...args);
  const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
  const token = (await cli('enroll-tokens', 'create', '--labels', `site=${o.site}`, '--max-uses', '1')).token;
  const port = await freePort();
  const agent = new AgentProcess(
    ['--server', cp.url, '--enroll-token', token, '--trust-root', keys.rootPublicKey, '--data-dir', path.join(dir, 'agent'), '--api-port', String(port), '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000', '--stats-window-s', '1', ...(o.agentArgs ?? [])],
    { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
  ).start();
  const deviceId: string = await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.deviceId, 'agent enrolled', 30_000);
  return {
    cp,
    dir,
    env,
    cli,
    agent,
    port,
    deviceId,
    async stop() {
      await agent.stop();
      await cp.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
