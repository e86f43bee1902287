// The `command` trainer: runs the user's program (no shell) in the job's folder with the snapshot and
// output paths in its environment. Its stdout/stderr lines go to the job log; a non-zero exit, a
// signal or a missing output fails the attempt. On timeout or cancellation the whole process group
// gets SIGTERM, then SIGKILL after a grace period, so a trainer's own children die with it.
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { LineSplitter } from '../job-log.ts';
import type { CommandTrainer } from '../retrain-policy.ts';
import type { TrainerContext, TrainerResult } from './trainer.ts';

const KILL_GRACE_MS = 2000;

export async function runCommandTrainer(spec: z.infer<typeof CommandTrainer>, ctx: TrainerContext): Promise<TrainerResult> {
  const metricsPath = path.join(ctx.workDir, 'metrics.json');
  const env: Record<string, string> = {
    // Only what a program needs to start, not the control plane's own configuration or secrets.
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? ctx.workDir,
    LANG: process.env.LANG ?? 'C.UTF-8',
    ...spec.env,
    FLOTILLA_JOB_ID: ctx.jobId,
    FLOTILLA_MODEL: ctx.modelName,
    FLOTILLA_ATTEMPT: String(ctx.attempt),
    FLOTILLA_DATASET: ctx.datasetPath,
    FLOTILLA_DATASET_KIND: ctx.datasetKind,
    FLOTILLA_OUTPUT: ctx.outputPath,
    FLOTILLA_METRICS: metricsPath,
    FLOTILLA_PARENT_MODEL: ctx.parentModelPath ?? '',
  };
  ctx.log('runner', `running ${JSON.stringify(spec.argv)}`);
  const child = spawn(spec.argv[0], spec.argv.slice(1), { cwd: ctx.workDir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const out = new LineSplitter((l) => ctx.log('stdout', l));
  const err = new LineSplitter((l) => ctx.log('stderr', l));
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => err.push(d));

  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      /* already gone */
    }
  };
  const onAbort = () => {
    killGroup('SIGTERM');
    killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
  };
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (e) => resolve({ code: null, signal: null, error: e }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(killTimer);
  ctx.signal.removeEventListener('abort', onAbort);
  out.end();
  err.end();
  if (ctx.signal.aborted) throw ctx.signal.reason;
  if (exit.error) throw new Error(`cannot start ${spec.argv[0]}: ${exit.error.message}`);
  if (exit.code !== 0) throw new Error(exit.signal ? `trainer killed by ${exit.signal}` : `trainer exited with code ${exit.code}`);
  await checkOutput(ctx.outputPath);
  return { kind: 'model', metrics: await readMetrics(metricsPath, ctx), params: { argv: spec.argv } };
}

/**
 * FLOTILLA_OUTPUT is a file path (…/model.onnx), not a folder: a trainer that made it one, or wrote
 * nothing, gets an error naming the variable and what was expected instead of a bare EISDIR later.
 */
async function checkOutput(file: string): Promise<void> {
  const s = await stat(file).catch(() => null);
  if (s?.isDirectory()) throw new Error(`FLOTILLA_OUTPUT (${file}) is the path of the ONNX file to write, but the trainer made it a folder: write the model to that path itself (e.g. copyFileSync(trained, process.env.FLOTILLA_OUTPUT))`);
  if (!s?.isFile() || s.size === 0) throw new Error(`the trainer exited 0 but wrote no model to FLOTILLA_OUTPUT (${file}): write the ONNX bytes to that file path`);
}

/** Optional `{name: number}` the program may write to FLOTILLA_METRICS (a file path); anything else is ignored with a log line. */
async function readMetrics(file: string, ctx: TrainerContext): Promise<Record<string, number>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') ctx.log('runner', `FLOTILLA_METRICS (${file}) is the path of a JSON file to write, but the trainer made it a folder: metrics ignored`);
    return {};
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1])));
  } catch {
    ctx.log('runner', 'FLOTILLA_METRICS is not JSON: ignored');
    return {};
  }
}
