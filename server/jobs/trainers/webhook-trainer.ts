// The `webhook` trainer: hands the job to an external pipeline (Airflow, Kubeflow, GitHub Actions …).
// It POSTs the job with a one-time token, signed like the alert webhook (x-flotilla-signature:
// sha256=<HMAC of the body>); the pipeline downloads the snapshot (and the parent model) with that
// token and uploads the trained model to `uploadUrl`, which continues the job. Only the token's
// sha256 is stored. A refused or failed call fails the attempt (and is retried like any attempt).
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { signBody } from '../../webhooks/webhook-sender.ts';
import { sha256Hex } from '../../auth/secrets.ts';
import type { WebhookTrainer } from '../retrain-policy.ts';
import type { TrainerContext, TrainerResult } from './trainer.ts';

const CALL_TIMEOUT_MS = 15_000;

export async function runWebhookTrainer(spec: z.infer<typeof WebhookTrainer>, ctx: TrainerContext, serverUrl: string): Promise<TrainerResult> {
  const token = `fjt_${randomBytes(32).toString('base64url')}`;
  const base = `${serverUrl.replace(/\/$/, '')}/api/v1/jobs/${ctx.jobId}`;
  const body = JSON.stringify({
    event: 'job.train',
    jobId: ctx.jobId,
    model: ctx.modelName,
    attempt: ctx.attempt,
    datasetKind: ctx.datasetKind,
    datasetUrl: `${base}/dataset`,
    parentModelUrl: ctx.parentModelPath ? `${base}/parent-model` : null,
    uploadUrl: `${base}/result`,
    token,
  });
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-flotilla-event': 'job.train', 'x-flotilla-delivery': `${ctx.jobId}.${ctx.attempt}` };
  if (spec.secret) headers['x-flotilla-signature'] = signBody(spec.secret, body);
  ctx.log('runner', `calling the training webhook ${new URL(spec.url).origin}`);
  let res: Response;
  try {
    res = await fetch(spec.url, { method: 'POST', headers, body, signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(CALL_TIMEOUT_MS)]) });
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw new Error(`training webhook unreachable: ${(err as Error).message}`);
  }
  await res.body?.cancel();
  if (!res.ok) throw new Error(`training webhook answered ${res.status}`);
  ctx.log('runner', `webhook accepted (${res.status}); waiting for the pipeline to upload the model`);
  return { kind: 'waiting', uploadTokenHash: sha256Hex(token) };
}
