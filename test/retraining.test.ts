// Continuous training on a real control plane: retraining policies, jobs with command / webhook /
// built-in trainers (logs, retries, timeouts, cancellation), the cron schedule and the drift trigger.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { signBody } from '../server/webhooks/webhook-sender.ts';
import { eq } from 'drizzle-orm';
import { alerts, jobs } from '../server/db/schema.ts';
import { exportMlpOnnx, trainMlp } from '../server/training/mlp.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { jobHelpers } from './helpers/jobs.ts';
import { gemmModel } from './helpers/models.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('retraining jobs', () => {
  let cp: TestPlane;
  let dir: string;

  const { api, push, setPolicy, startJob, waitJob, logs } = jobHelpers(() => cp, { data: { dataset: 'sensors' } });
  /** A trainer program in the test's folder, run with node. */
  const script = async (name: string, body: string) => {
    const file = path.join(dir, name);
    await writeFile(file, body);
    return [process.execPath, file];
  };

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100, jobRetryBackoffMs: 100, schedulerLeaseTtlMs: 1000 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-retrain-'));
    const csv = tabularToCsv(makeTabularRows({ n: 400, seed: 7 }));
    const r = await cp.api('POST', '/api/v1/datasets/sensors/versions?format=csv&group=region', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('policies are validated: bad cron, unknown dataset, command trainer only for admins', async () => {
    await push('pol', gemmModel({ seed: 1 }));
    const base = { trainer: { kind: 'builtin', model: 'tabular-demo-mlp' }, data: { dataset: 'sensors' } };
    const badCron = await api('PUT', '/api/v1/models/pol/retrain-policy', { ...base, cron: 'every day' });
    assert.equal(badCron.status, 400);
    assert.match(badCron.body.error.message, /cron/);
    const noData = await api('PUT', '/api/v1/models/pol/retrain-policy', { ...base, data: { dataset: 'nope' } });
    assert.equal(noData.status, 400);
    assert.match(noData.body.error.message, /dataset "nope"/);
    const badTrainer = await api('PUT', '/api/v1/models/pol/retrain-policy', { ...base, trainer: { kind: 'shell' } });
    assert.equal(badTrainer.status, 400);
    const token = (await api('POST', '/api/v1/tokens', { name: 'ml', role: 'ml-engineer' })).body.token;
    const cmd = await cp.api('PUT', '/api/v1/models/pol/retrain-policy', { token, json: { ...base, trainer: { kind: 'command', argv: ['true'] } } });
    assert.equal(cmd.status, 403);
    const ok = await cp.api('PUT', '/api/v1/models/pol/retrain-policy', { token, json: { ...base, cron: '0 3 * * *', after: { rollout: { stages: [0.25, 1], bakeS: 60 } } } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.after.rollout.strategy, 'canary');
    assert.equal((await api('GET', '/api/v1/models/pol/retrain-policy')).body.cron, '0 3 * * *');
    assert.equal((await api('GET', '/api/v1/models/nope/retrain-policy')).status, 404);
    assert.equal((await api('POST', '/api/v1/models/nope/retrain')).status, 404);
    assert.equal((await api('DELETE', '/api/v1/models/pol/retrain-policy')).status, 204);
    assert.equal((await api('POST', '/api/v1/models/pol/retrain')).status, 409, 'no policy, no manual job');
  });

  test('command trainer: the program gets the snapshot and parent, its output becomes v2 with lineage and a reference profile', async () => {
    await push('cmd', gemmModel({ seed: 2 }));
    const argv = await script(
      'copy-parent.mjs',
      `import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
       const rows = readFileSync(process.env.FLOTILLA_DATASET, 'utf8').trim().split('\\n').length - 1;
       console.log('training on ' + rows + ' rows for ' + process.env.FLOTILLA_JOB_ID);
       console.error('a warning on stderr');
       copyFileSync(process.env.FLOTILLA_PARENT_MODEL, process.env.FLOTILLA_OUTPUT);
       writeFileSync(process.env.FLOTILLA_METRICS, JSON.stringify({ accuracy: 0.91, note: 'ignored' }));`,
    );
    await setPolicy('cmd', { trainer: { kind: 'command', argv }, after: { evaluate: false } });
    const id = await startJob('cmd');
    const job = await waitJob(id, ['succeeded', 'failed']);
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.result, 'cmd@2');
    assert.equal(job.parent, 'cmd@1');
    assert.equal(job.dataset, 'sensors@1');
    assert.deepEqual(job.metrics, { accuracy: 0.91 });
    // Each state the job went through is on the event stream, in order.
    const jobEvents = (await api('GET', '/api/v1/events/recent?kind=job&limit=1000')).body.items.filter((e: { subject: string }) => e.subject === id);
    assert.deepEqual(jobEvents.map((e: { type: string }) => e.type), ['job.queued', 'job.running', 'job.succeeded']);
    assert.deepEqual([jobEvents[0].data.jobId, jobEvents[0].data.model], [id, 'cmd']);
    const v2 = (await api('GET', '/api/v1/models/cmd/versions/2')).body;
    assert.equal(v2.parent, 'cmd@1');
    assert.equal(v2.lineage.jobId, id);
    assert.equal(v2.lineage.datasetVersion, 'sensors@1');
    assert.equal(v2.lineage.trainer.kind, 'command');
    assert.deepEqual(v2.lineage.metrics, { accuracy: 0.91 });
    assert.equal(v2.lineage.trigger.kind, 'manual');
    const ref = (await api('GET', '/api/v1/models/cmd/versions/2/reference')).body;
    assert.equal(ref.rows, 400);
    assert.deepEqual(ref.features.map((f: { name: string }) => f.name).sort(), ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'], 'features only: no label, no group column');
    const lines = await logs(id);
    assert.ok(lines.some((l) => l.stream === 'stdout' && l.line === `training on 400 rows for ${id}`), JSON.stringify(lines));
    assert.ok(lines.some((l) => l.stream === 'stderr' && l.line === 'a warning on stderr'));
    assert.ok(lines.some((l) => l.stream === 'runner' && /registered cmd@2/.test(l.line)));
  });

  test('a trainer past its timeout is killed and retried; after maxAttempts the job fails', async () => {
    await push('slow', gemmModel({ seed: 3 }));
    const argv = await script('sleepy.mjs', `import { appendFileSync } from 'node:fs'; appendFileSync(${JSON.stringify(path.join(dir, 'sleepy.pids'))}, process.pid + '\\n'); setTimeout(() => {}, 60000);`);
    await setPolicy('slow', { trainer: { kind: 'command', argv }, timeoutS: 1, maxAttempts: 2 });
    const started = Date.now();
    const job = await waitJob(await startJob('slow'), ['failed', 'succeeded']);
    assert.equal(job.status, 'failed');
    assert.equal(job.attempt, 2);
    assert.match(job.error, /failed after 2 attempt\(s\): timed out after 1 s/);
    assert.ok(Date.now() - started < 15_000);
    const pids = (await readFile(path.join(dir, 'sleepy.pids'), 'utf8')).trim().split('\n').map(Number);
    assert.equal(pids.length, 2, `two attempts ran: ${pids} ${JSON.stringify(await logs(job.id))}`);
    await sleep(200);
    for (const pid of pids) assert.equal(alive(pid), false, `trainer ${pid} was killed`);
    assert.equal((await logs(job.id)).filter((l) => /^attempt \d failed: timed out after 1 s/.test(l.line)).length, 2);
  });

  test('cancelling a running job kills its trainer', async () => {
    await push('cancel', gemmModel({ seed: 4 }));
    const pidFile = path.join(dir, 'cancel.pid');
    const argv = await script('forever.mjs', `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); console.log('started'); setTimeout(() => {}, 60000);`);
    await setPolicy('cancel', { trainer: { kind: 'command', argv }, timeoutS: 60 });
    const id = await startJob('cancel');
    await waitJob(id, ['running']);
    const until = Date.now() + 10_000;
    while (!(await logs(id)).some((l) => l.line === 'started')) {
      if (Date.now() > until) assert.fail('trainer never started');
      await sleep(50);
    }
    const pid = Number(await readFile(pidFile, 'utf8'));
    assert.equal(alive(pid), true);
    const r = await api('POST', `/api/v1/jobs/${id}/cancel`);
    assert.equal(r.status, 200);
    const job = await waitJob(id, ['cancelled', 'failed', 'succeeded'], 10_000);
    assert.equal(job.status, 'cancelled');
    const types = (await api('GET', '/api/v1/events/recent?kind=job&limit=1000')).body.items.filter((e: { subject: string }) => e.subject === id).map((e: { type: string }) => e.type);
    assert.deepEqual(types, ['job.queued', 'job.running', 'job.cancelled']);
    await sleep(200);
    assert.equal(alive(pid), false, 'the trainer process is gone');
    assert.equal((await api('POST', `/api/v1/jobs/${id}/cancel`)).status, 409, 'a finished job cannot be cancelled');
  });

  test('a failing command keeps its logs and ends failed after maxAttempts (CLI shows it)', async () => {
    await push('broken', gemmModel({ seed: 5 }));
    const argv = await script('broken.mjs', `console.log('loading data'); console.error('Traceback: something broke'); process.exit(3);`);
    await setPolicy('broken', { trainer: { kind: 'command', argv }, maxAttempts: 3 });
    const job = await waitJob(await startJob('broken'), ['failed', 'succeeded']);
    assert.equal(job.status, 'failed');
    assert.equal(job.attempt, 3);
    assert.match(job.error, /exited with code 3/);
    const lines = await logs(job.id);
    assert.equal(lines.filter((l) => l.stream === 'stderr' && l.line === 'Traceback: something broke').length, 3);
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const ls = await runCli(['jobs', 'ls', '--model', 'broken'], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`${job.id}\\s+broken\\s+failed\\s+manual\\s+command\\s+3/3`));
    const cliLogs = await runCli(['jobs', 'logs', job.id], env);
    assert.match(cliLogs.stdout, /stderr Traceback: something broke/);
    // jobs show: times relative for people ("… ago" after the ISO time), ISO only in --json.
    const show = await runCli(['jobs', 'show', job.id], env);
    assert.equal(show.code, 0, show.stderr);
    for (const k of ['created', 'started', 'finished']) assert.match(show.stdout, new RegExp(`^${k}\\s+\\d{4}-\\d\\d-\\d\\dT\\S+ \\((just now|.+ ago)\\)$`, 'm'), k);
    const showJson = JSON.parse((await runCli(['--json', 'jobs', 'show', job.id], env)).stdout);
    assert.equal(showJson.finishedAt, job.finishedAt);
    const missing = await runCli(['jobs', 'show', 'job_nope'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /job "job_nope" not found/);
  });

  test('webhook trainer: a signed call, the pipeline downloads the snapshot and uploads the model with the job token', async () => {
    await push('hook', gemmModel({ seed: 6 }));
    const calls: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        calls.push({ headers: req.headers, body });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/train`;
      await setPolicy('hook', { trainer: { kind: 'webhook', url, secret: 's3cret' }, after: { evaluate: false } });
      assert.equal((await api('GET', '/api/v1/models/hook/retrain-policy')).body.trainer.secret, '(set)', 'the secret is never echoed');
      const id = await startJob('hook');
      const waiting = await waitJob(id, ['waiting', 'failed']);
      assert.equal(waiting.status, 'waiting', waiting.error);
      assert.equal(calls.length, 1);
      assert.equal(calls[0].headers['x-flotilla-signature'], signBody('s3cret', calls[0].body));
      const call = JSON.parse(calls[0].body);
      assert.equal(call.jobId, id);
      assert.equal(call.model, 'hook');
      const auth = { authorization: `Bearer ${call.token}` };
      const data = await fetch(call.datasetUrl, { headers: auth });
      assert.equal(data.status, 200);
      assert.equal((await data.text()).trim().split('\n').length, 401);
      const parent = await fetch(call.parentModelUrl, { headers: auth });
      assert.equal(parent.status, 200);
      const wrong = await fetch(call.uploadUrl, { method: 'POST', headers: { authorization: 'Bearer fjt_wrong' }, body: gemmModel({ seed: 7 }) as unknown as BodyInit });
      assert.equal(wrong.status, 401);
      const junk = await fetch(call.uploadUrl, { method: 'POST', headers: auth, body: 'not onnx' });
      assert.equal(junk.status, 422, 'a bad upload is refused and the job keeps waiting');
      assert.equal((await api('GET', `/api/v1/jobs/${id}`)).body.status, 'waiting');
      const up = await fetch(`${call.uploadUrl}?metric=accuracy=0.88`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: gemmModel({ seed: 7 }) as unknown as BodyInit });
      const done = await up.json();
      assert.equal(up.status, 200, JSON.stringify(done));
      assert.equal(done.status, 'succeeded', done.error);
      assert.equal(done.result, 'hook@2');
      const v2 = (await api('GET', '/api/v1/models/hook/versions/2')).body;
      assert.equal(v2.lineage.jobId, id);
      assert.equal(v2.metrics.accuracy, 0.88);
      const again = await fetch(call.uploadUrl, { method: 'POST', headers: auth, body: gemmModel({ seed: 8 }) as unknown as BodyInit });
      assert.equal(again.status, 401, 'the token is one-time');
    } finally {
      server.close();
    }
  });

  test('built-in trainer fine-tunes the demo MLP on the snapshot in a worker; evaluation against the champion', async () => {
    const rows = makeTabularRows({ n: 600, seed: 11 });
    await push('mlp', exportMlpOnnx(trainMlp(rows, { seed: 1, epochs: 5 })));
    await setPolicy('mlp', { trainer: { kind: 'builtin', model: 'tabular-demo-mlp', epochs: 8, fineTune: true, seed: 3 } });
    const job = await waitJob(await startJob('mlp'), ['succeeded', 'failed'], 60_000);
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.result, 'mlp@2');
    assert.ok(job.metrics.accuracy > 0.6, `held-out accuracy ${job.metrics.accuracy}`);
    assert.equal(job.metrics.samples, 340);
    const v2 = (await api('GET', '/api/v1/models/mlp/versions/2')).body;
    assert.equal(v2.lineage.params.fineTune, true);
    assert.ok(v2.evaluation, 'evaluated against its parent');
    const lines = await logs(job.id);
    assert.ok(lines.some((l) => /^epoch 8 loss/.test(l.line)), 'epochs logged');
    assert.ok(lines.some((l) => /evaluated mlp@2 on sensors@1/.test(l.line)), JSON.stringify(lines.map((l) => l.line)));
  });

  test('a cron policy fires on its schedule; disabling it stops it', async () => {
    await push('cron', gemmModel({ seed: 9 }));
    const argv = await script('copy.mjs', `import { copyFileSync } from 'node:fs'; copyFileSync(process.env.FLOTILLA_PARENT_MODEL, process.env.FLOTILLA_OUTPUT);`);
    const policy = await setPolicy('cron', { cron: '* * * * * *', trainer: { kind: 'command', argv }, after: { evaluate: false } });
    const until = Date.now() + 10_000;
    let jobs: Array<{ id: string; trigger: { kind: string }; status: string }> = [];
    while (!jobs.some((j) => j.status === 'succeeded')) {
      if (Date.now() > until) assert.fail(`no scheduled job succeeded: ${JSON.stringify(jobs)}`);
      await sleep(100);
      jobs = (await api('GET', '/api/v1/jobs?model=cron')).body.jobs;
    }
    assert.ok(jobs.every((j) => j.trigger.kind === 'cron'));
    await setPolicy('cron', { ...policy, model: undefined, updatedAt: undefined, updatedBy: undefined, enabled: false });
    await sleep(500); // a tick reloads the schedules
    const count = (await api('GET', '/api/v1/jobs?model=cron')).body.jobs.length;
    await sleep(2200);
    assert.equal((await api('GET', '/api/v1/jobs?model=cron')).body.jobs.length, count, 'no more jobs once disabled');
  });

  test('a drift alert open longer than driftOpenForS starts exactly one job, with the drifted version as parent', async () => {
    const v1 = await push('drifty', gemmModel({ seed: 10 }));
    const argv = await script('copy2.mjs', `import { copyFileSync } from 'node:fs'; copyFileSync(process.env.FLOTILLA_PARENT_MODEL, process.env.FLOTILLA_OUTPUT);`);
    await push('drifty', gemmModel({ seed: 11 })); // a newer version: the drifted one is still v1
    await setPolicy('drifty', { driftOpenForS: 1, trainer: { kind: 'command', argv }, after: { evaluate: false, rollout: { cohort: 'drifted' } } });
    const db = cp.plane.db;
    const versionId = (await db.query.modelVersions.findMany()).find((v) => v.artifactSha256 === v1.sha256)!.id;
    const now = new Date().toISOString();
    await db.insert(alerts).values({
      id: 'alt_test1',
      kind: 'drift',
      modelVersionId: versionId,
      cohort: 'lab',
      feature: 'f0',
      score: 0.5,
      threshold: 0.1,
      features: [{ feature: 'f0', kind: 'input', method: 'psi', score: 0.5, threshold: 0.1 }],
      windowStart: now,
      windowEnd: now,
      status: 'open',
      openedAt: now,
      updatedAt: now,
    });
    await sleep(600);
    assert.equal((await api('GET', '/api/v1/jobs?model=drifty')).body.jobs.length, 0, 'not before driftOpenForS');
    const until = Date.now() + 10_000;
    let jobs: Array<{ id: string; trigger: { kind: string; alertId?: string; cohort?: string }; parent: string; status: string }> = [];
    while (!jobs.length || !['succeeded', 'failed'].includes(jobs[0].status)) {
      if (Date.now() > until) assert.fail(`no drift job finished: ${JSON.stringify(jobs)}`);
      await sleep(100);
      jobs = (await api('GET', '/api/v1/jobs?model=drifty')).body.jobs;
    }
    await sleep(500); // more ticks: still one job for the alert
    jobs = (await api('GET', '/api/v1/jobs?model=drifty')).body.jobs;
    assert.equal(jobs.length, 1);
    assert.deepEqual(jobs[0].trigger, { kind: 'drift', alertId: 'alt_test1', cohort: 'lab' });
    assert.equal(jobs[0].parent, 'drifty@1');
    assert.equal(jobs[0].status, 'succeeded');
    const lines = await logs(jobs[0].id);
    assert.ok(lines.some((l) => /no rollout: no bundle of drifty/.test(l.line)), JSON.stringify(lines.map((l) => l.line)));
  });

  test('a job whose runner died (stale heartbeat) is queued again and finishes', async () => {
    await push('orphan', gemmModel({ seed: 12 }));
    const argv = await script('copy3.mjs', `import { copyFileSync } from 'node:fs'; copyFileSync(process.env.FLOTILLA_PARENT_MODEL, process.env.FLOTILLA_OUTPUT);`);
    await setPolicy('orphan', { trainer: { kind: 'command', argv }, after: { evaluate: false }, maxAttempts: 2 });
    // What a replica killed mid-attempt leaves behind: running, its runner gone, heartbeat old.
    await cp.plane.scheduler.stop();
    const id = await startJob('orphan');
    await cp.plane.db.update(jobs).set({ status: 'running', runner: 'dead-replica', attempt: 1, heartbeatAt: new Date(Date.now() - 60_000).toISOString() }).where(eq(jobs.id, id));
    cp.plane.scheduler.start();
    const job = await waitJob(id, ['succeeded', 'failed']);
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.attempt, 2, 'the lost attempt counts');
    const audit = (await api('GET', '/api/v1/audit?action=job.requeue')).body;
    assert.ok(JSON.stringify(audit).includes(id));
  });

  test('two control planes on one database: one runs the scheduler; the other takes over when it stops', async () => {
    const second = await startControlPlane({ dataDir: cp.dataDir, dbUrl: cp.plane.config.dbUrl, schedulerTickMs: 100, schedulerLeaseTtlMs: 1000 });
    try {
      await sleep(400);
      assert.equal(cp.plane.scheduler.isLeader, true);
      assert.equal(second.plane.scheduler.isLeader, false, 'one leader');
      await cp.plane.scheduler.stop(); // a clean stop releases the lease
      const until = Date.now() + 5000;
      while (!second.plane.scheduler.isLeader) {
        if (Date.now() > until) assert.fail('the second replica never took over');
        await sleep(50);
      }
      const firstRunner = (await api('GET', '/api/v1/jobs?model=orphan')).body.jobs[0].runner;
      const done = await waitJob(await startJob('orphan'), ['succeeded', 'failed']);
      assert.equal(done.status, 'succeeded');
      assert.notEqual(done.runner, firstRunner, 'run by the second replica');
    } finally {
      await second.plane.stop();
      await rm(second.dataDir, { recursive: true, force: true });
      cp.plane.scheduler.start();
    }
  });
});
