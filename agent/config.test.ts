import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { Backoff } from './backoff.ts';
import { ConfigError, parseAgentConfig } from './config.ts';
import { readAgentEnv } from './env.ts';
import { IdentityError, parseTrustRoot } from './identity.ts';

describe('agent config', () => {
  test('FLOTILLA_AGENT_* variables map to options; defaults fill the rest', () => {
    const env = readAgentEnv({ FLOTILLA_AGENT_SERVER: 'http://cp:8080', FLOTILLA_AGENT_API_PORT: '9000', OTHER: 'x', FLOTILLA_AGENT_NAME: '' });
    assert.deepEqual(env, { server: 'http://cp:8080', apiPort: '9000' });
    const c = parseAgentConfig(env);
    assert.equal(c.apiPort, 9000);
    assert.equal(c.apiHost, '127.0.0.1');
    assert.equal(c.dataDir, path.resolve('./agent-data'));
    assert.equal(c.probationMs, 60_000);
  });

  test('monitoring options: intervals unset unless given (the manifest decides), statistics on, outbox bounded', () => {
    const c = parseAgentConfig({});
    assert.equal(c.telemetryIntervalS, undefined);
    assert.equal(c.statsWindowS, undefined);
    assert.equal(c.stats, 'on');
    assert.equal(c.outboxMaxBytes, 50 * 1024 * 1024);
    const env = readAgentEnv({ FLOTILLA_AGENT_TELEMETRY_INTERVAL_S: '1', FLOTILLA_AGENT_STATS_WINDOW_S: '2', FLOTILLA_AGENT_STATS: 'off' });
    assert.deepEqual(parseAgentConfig(env), { ...parseAgentConfig({}), telemetryIntervalS: 1, statsWindowS: 2, stats: 'off' });
    assert.throws(() => parseAgentConfig({ stats: 'maybe' }, { stats: 'flag' }), /invalid --stats:/);
    assert.throws(() => parseAgentConfig({ statsWindowS: '0' }, { statsWindowS: 'env' }), /invalid FLOTILLA_AGENT_STATS_WINDOW_S/);
    assert.throws(() => parseAgentConfig({ outboxMaxBytes: '1000' }, { outboxMaxBytes: 'flag' }), /invalid --outbox-max-bytes/);
  });

  test('a bad value fails with one line naming the flag or the variable it came from', () => {
    assert.throws(() => parseAgentConfig({ apiPort: '70000' }, { apiPort: 'flag' }), (e: unknown) => e instanceof ConfigError && /^invalid --api-port:/.test(e.message));
    assert.throws(() => parseAgentConfig({ server: 'not a url' }, { server: 'env' }), /invalid FLOTILLA_AGENT_SERVER: /);
    assert.throws(() => parseAgentConfig({ reconnectMinMs: 500, reconnectMaxMs: 100 }), /reconnect-max-ms/);
  });

  test('trust root: base64 key, JSON file ({keyid, publicKey} or the enrollment shape), mismatched ids refused', async () => {
    const k = generateKeyPair();
    assert.deepEqual(await parseTrustRoot(k.publicKey), { keyid: k.keyid, publicKey: k.publicKey });
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-cfg-'));
    try {
      await writeFile(path.join(dir, 'root.pub.json'), JSON.stringify({ keyid: k.keyid, publicKey: k.publicKey }));
      assert.equal((await parseTrustRoot(path.join(dir, 'root.pub.json'))).keyid, k.keyid);
      await writeFile(path.join(dir, 'enroll.json'), JSON.stringify({ rootKeyid: k.keyid, rootPublicKey: k.publicKey }));
      assert.equal((await parseTrustRoot(path.join(dir, 'enroll.json'))).keyid, k.keyid);
      await writeFile(path.join(dir, 'bad.json'), JSON.stringify({ keyid: 'a'.repeat(64), publicKey: k.publicKey }));
      await assert.rejects(parseTrustRoot(path.join(dir, 'bad.json')), IdentityError);
      await assert.rejects(parseTrustRoot(path.join(dir, 'missing.json')), /cannot read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('backoff doubles up to the cap, with jitter within the window', () => {
    const b = new Backoff({ minMs: 100, maxMs: 1000, random: () => 1 });
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
    const low = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual([low.next(), low.next()], [0, 0]); // full jitter: see backoff.test.ts
    b.reset();
    assert.equal(b.next(), 100);
  });
});
