// The ingest buffer's flush timer: a timer that fires while a flush is still writing (a long transaction
// under load) must not keep later messages from being written on time. Before the fix the fired timer
// stayed set, no later message armed a new one, and a quiet fleet's messages waited for a full batch.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { telemetryMessage } from '../../test/helpers/device-stats.ts';
import { type Db, openDatabase } from '../db/client.ts';
import { Metrics } from '../metrics.ts';
import { Ingest } from './ingest.ts';

let dir: string;
let db: Db;
let close: () => void;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-ingest-timer-'));
  const opened = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
  db = opened.db;
  close = () => opened.client.close();
});
after(async () => {
  close();
  await rm(dir, { recursive: true, force: true });
});

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

test('a message after a flush that outlasted its timer is still written by a timer of its own', async () => {
  const metrics = new Metrics();
  const ingest = new Ingest({ db, metrics, logger: pino({ level: 'silent' }), flushMs: 10, batchSize: 1000, retentionHours: 72, minuteRollupRetentionHours: 72, samplesRetentionDays: 7, cleanupIntervalMs: 3_600_000 });
  ingest.start();
  const send = (seq: number) => ingest.acceptTelemetry('dev_flushtimer1', JSON.parse(JSON.stringify(telemetryMessage({ deviceId: 'dev_flushtimer1', seq, at: new Date(), inferences: 1 }))));
  // Another writer holds this process's write slot, so the first flush waits behind it.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let held!: () => void;
  const holding = new Promise<void>((r) => (held = r));
  const blocker = db.transaction(async () => {
    held();
    await gate;
  });
  await holding;
  const first = send(1); // its flush starts after 10 ms and waits for the slot
  await new Promise((r) => setTimeout(r, 50));
  const second = send(2); // arms the timer, which fires into the waiting flush
  await new Promise((r) => setTimeout(r, 50));
  open();
  await blocker;
  await within(Promise.all([first, second]), 15_000, 'the first two messages');
  await new Promise((r) => setTimeout(r, 50)); // that flush has ended
  // Each message's promise settles once its batch was written (or dropped and counted: this device is unknown).
  await within(send(3), 10_000, 'the message after the long flush');
  const dropped = await metrics.registry.getSingleMetricAsString('flotilla_mqtt_messages_dropped_total');
  assert.match(dropped, /reason="unknown_device"\} 3/, 'all three reached a batch (refused there as unknown), none dropped before');
  await ingest.stop();
});
