// Starts a real Mosquitto 2 with the dynamic-security plugin for a test: config and dynamic-security
// JSON in a temp dir (an admin client whose password hash we compute like mosquitto_ctrl does:
// PBKDF2-SHA512, 101 iterations, 12-byte salt), on a free port on 127.0.0.1.
import { type ChildProcess, spawn } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';

const BINARIES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto'];
const PLUGINS = ['/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so', '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so', '/usr/lib/mosquitto_dynamic_security.so'];

export function findMosquitto(): { binary: string; plugin: string } | null {
  const binary = BINARIES.find((p) => existsSync(p));
  const plugin = PLUGINS.find((p) => existsSync(p));
  return binary && plugin ? { binary, plugin } : null;
}

/** Why Mosquitto tests are skipped here, or false when they can run. */
export function mosquittoSkip(): string | false {
  return findMosquitto() ? false : 'Mosquitto 2 with its dynamic-security plugin is not installed (apt-get install mosquitto)';
}

export interface TestMosquitto {
  url: string;
  port: number;
  admin: { username: string; password: string };
  dir: string;
  /** The broker's process id (the scale bench reads its RSS and file descriptors). */
  readonly pid: number | undefined;
  /** Stops the broker process (its dynamic-security JSON stays, the port is kept for resume()). */
  halt(): Promise<void>;
  /** Starts it again on the same port. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A dynamic-security client entry with its password hashed as mosquitto_ctrl does. */
export function dynsecClientEntry(username: string, password: string, roles = ['admin']) {
  const salt = randomBytes(12);
  return {
    username,
    password: pbkdf2Sync(password, salt, 101, 64, 'sha512').toString('base64'),
    salt: salt.toString('base64'),
    iterations: 101,
    roles: roles.map((rolename) => ({ rolename })),
  };
}

/** The server's external-broker settings for a test Mosquitto. */
export function mosquittoConfig(m: TestMosquitto, clientId = `flotilla-test-${randomBytes(3).toString('hex')}`) {
  return {
    externalMqttUrl: m.url,
    externalBroker: { username: 'flotilla-server', password: randomBytes(16).toString('base64url'), admin: m.admin, clientId, sessionExpiryS: 300 },
  };
}

export async function startMosquitto(opts: { maxQueuedMessages?: number } = {}): Promise<TestMosquitto> {
  const found = findMosquitto();
  if (!found) throw new Error(mosquittoSkip() as string);
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-mosquitto-'));
  const admin = { username: 'admin', password: randomBytes(12).toString('base64url') };
  const all = (acltype: string, topic: string) => ({ acltype, topic, allow: true });
  await writeFile(
    path.join(dir, 'dynamic-security.json'),
    JSON.stringify({
      clients: [dynsecClientEntry(admin.username, admin.password)],
      roles: [{ rolename: 'admin', acls: [all('publishClientSend', '$CONTROL/dynamic-security/#'), all('publishClientReceive', '$CONTROL/dynamic-security/#'), all('subscribePattern', '$CONTROL/dynamic-security/#')] }],
      defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
    }),
  );
  let child: ChildProcess | undefined;
  let port = 0;
  let log = '';
  const launch = async (): Promise<void> => {
    await writeFile(
      path.join(dir, 'mosquitto.conf'),
      [
        'per_listener_settings false',
        'allow_anonymous false',
        // Started as root, Mosquitto drops to the `mosquitto` user, which cannot read our 0700 temp dir.
        `user ${userInfo().username}`,
        `listener ${port} 127.0.0.1`,
        `plugin ${found.plugin}`,
        `plugin_opt_config_file ${path.join(dir, 'dynamic-security.json')}`,
        'persistence false',
        `max_queued_messages ${opts.maxQueuedMessages ?? 100_000}`,
        'log_dest stderr',
        'log_type error',
        'log_type warning',
      ].join('\n') + '\n',
    );
    child = spawn(found.binary, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<never>((_, reject) => child!.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${log.trim()}`))));
    exited.catch(() => {});
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const c = await Promise.race([mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { ...admin, reconnectPeriod: 0, connectTimeout: 2000 }), exited]);
        await c.endAsync();
        return;
      } catch (err) {
        if (child!.exitCode !== null || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  // The free port may be taken between probing and binding: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      child?.kill('SIGKILL');
      if (attempt >= 5) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const stopChild = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    await gone;
  };
  return {
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get pid() {
      return child?.pid;
    },
    admin,
    dir,
    halt: stopChild,
    resume: launch,
    async stop() {
      await stopChild();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
