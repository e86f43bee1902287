import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { BrokerAccessRestore } from './broker-access-restore.ts';
import type { HttpFetch, HttpRequestInit } from './http-client.ts';

/** A restore whose control plane answers from a list, on a clock the test moves. */
function setup(answers: Array<{ status: number; body: unknown } | 'network'>) {
  let clock = 1_000_000;
  const calls: Array<{ url: string; authorization: string }> = [];
  const fetch: HttpFetch = async (url, init?: HttpRequestInit) => {
    calls.push({ url: String(url), authorization: init?.headers?.authorization ?? '' });
    const a = answers.shift() ?? { status: 200, body: { createdClient: false, createdRole: false } };
    if (a === 'network') throw new TypeError('fetch failed');
    const text = JSON.stringify(a.body);
    const body = Object.assign((async function* () {})(), { cancel: async () => {} });
    return { status: a.status, ok: a.status >= 200 && a.status < 300, headers: { get: () => 'application/json' }, body, text: async () => text };
  };
  const r = new BrokerAccessRestore({ serverUrl: 'http://cp.example:8080', deviceId: 'dev_a', secret: 's3cret', fetch, logger: pino({ level: 'silent' }), firstPauseMs: 1000, now: () => clock });
  const refuse = async () => {
    r.refused();
    await r.settled;
  };
  return { r, calls, refuse, advance: (ms: number) => (clock += ms) };
}

describe('BrokerAccessRestore (a refused agent asks the control plane for its lost broker login)', () => {
  test('the first refusal asks at once, with the device\'s own credentials; the next ones wait for the pause', async () => {
    const { r, calls, refuse, advance } = setup([{ status: 200, body: { createdClient: true, createdRole: true } }]);
    await refuse();
    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, 'http://cp.example:8080/api/v1/devices/dev_a/broker-access');
    assert.equal(calls[0].authorization, `Basic ${Buffer.from('dev_a:s3cret').toString('base64')}`);
    assert.equal(r.restored, 1);
    await refuse();
    assert.equal(calls.length, 1, 'asked again inside the pause');
    advance(1000);
    await refuse();
    assert.equal(calls.length, 2);
  });

  test('answers that change nothing double the pause up to 15 minutes; a connection resets it', async () => {
    const { calls, refuse, advance, r } = setup([]);
    const gaps: number[] = [];
    let last = 0;
    for (let t = 0; calls.length < 14; t += 500) {
      advance(500);
      const before = calls.length;
      await refuse();
      if (calls.length > before) {
        if (before) gaps.push(t - last);
        last = t;
      }
    }
    assert.deepEqual(gaps.slice(0, 4), [2000, 4000, 8000, 16000]);
    assert.equal(Math.max(...gaps), 15 * 60_000);
    r.connected();
    await refuse();
    assert.equal(calls.length, 15, 'a refusal after a connection asks at once');
  });

  test('a 503 or an unreachable server is retried after the first pause, not doubled', async () => {
    const { calls, refuse, advance } = setup(['network', { status: 503, body: { error: { code: 'broker_unavailable' } } }, 'network']);
    for (let i = 0; i < 3; i++) {
      await refuse();
      advance(1000);
    }
    assert.equal(calls.length, 3);
  });
});
