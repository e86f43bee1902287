import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { memoryPersistenceWithRetainedIndex } from './retained-index.ts';

const packet = (topic: string, payload: string) => ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, brokerId: 'b', brokerCounter: 1 }) as never;

async function topics(stream: Readable): Promise<string[]> {
  const out: string[] = [];
  for await (const p of stream) out.push(`${(p as { topic: string }).topic}=${(p as { payload: Buffer }).payload.toString()}`);
  return out;
}

describe('retained messages indexed by topic', () => {
  test('exact filters are answered from the index, wildcard filters by the scan, and an empty payload clears', async () => {
    const p = memoryPersistenceWithRetainedIndex();
    // Without a callback the call returns the write's promise (what aedes' retained publish path uses).
    const store = (topic: string, payload: string) => (p.storeRetained as unknown as (pkt: never) => Promise<void>)(packet(topic, payload));
    for (let i = 0; i < 1000; i++) await store(`flotilla/v1/devices/d${i}/desired`, `m${i}`);
    await store('flotilla/v1/devices/d7/desired', 'newer');
    assert.deepEqual(await topics(p.createRetainedStreamCombi(['flotilla/v1/devices/d7/desired', 'flotilla/v1/devices/d7/cmd'])), ['flotilla/v1/devices/d7/desired=newer']);
    assert.deepEqual(await topics(p.createRetainedStreamCombi(['flotilla/v1/devices/+/desired'])).then((t) => t.length), 1000);
    await store('flotilla/v1/devices/d7/desired', '');
    assert.deepEqual(await topics(p.createRetainedStreamCombi(['flotilla/v1/devices/d7/desired'])), []);
    assert.deepEqual(await topics(p.createRetainedStreamCombi(['flotilla/v1/devices/#'])).then((t) => t.length), 999);
  });
});
