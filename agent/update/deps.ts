// What every step of the update path shares: the agent's stores, runtime and reporter, and the
// settings the steps obey.
import type { Logger } from 'pino';
import type { PublicKeyRef } from '../../firmware-bundles/keys.ts';
import type { BundleStore } from '../bundle-store.ts';
import type { AgentConfig } from '../config.ts';
import type { Downloader } from '../downloader.ts';
import type { ModelRuntime } from '../model-runtime.ts';
import type { Reporter } from '../reporter.ts';
import type { AgentState, StateStore } from '../state-store.ts';
import { boundedStep } from '../update-error.ts';

export interface UpdateDeps {
  deviceId: string;
  pinnedRoot: PublicKeyRef | null;
  agentVersion: string;
  config: Pick<
    AgentConfig,
    'probationMs' | 'probationRequests' | 'probationMinRequests' | 'probationMaxErrorRate' | 'updateTimeoutMs' | 'stepTimeoutMs' | 'downloadSplayMs'
  >;
  state: StateStore;
  bundles: BundleStore;
  downloader: Downloader;
  runtime: ModelRuntime;
  reporter: Reporter;
  logger: Logger;
}

/** What an installed bundle is re-verified against (at start, before a rollback). */
export function verifyContext(d: UpdateDeps) {
  return { pinnedRoot: d.pinnedRoot, deviceId: d.deviceId, agentVersion: d.agentVersion };
}

/** Bounds one step by `stepTimeoutMs` and the update's signal; a late result is cleaned up. */
export function step<T>(d: UpdateDeps, p: Promise<T>, code: string, what: string, signal?: AbortSignal, cleanup?: (v: T) => unknown): Promise<T> {
  return boundedStep(p, { ms: d.config.stepTimeoutMs, code, what, signal, cleanup });
}

/** Records a manifest's final verdict, so a redelivery of it is not run again. */
export function recordHandled(s: AgentState, digest: string, counter: number, outcome: string): void {
  s.handled.push({ digest, counter, outcome });
  if (s.reinstall === digest) s.reinstall = null;
}
