// The agent's resolved configuration. Environment (env.ts) and command-line flags (main.ts) both feed
// one zod schema here, so a bad value fails at start with one line naming the flag or variable.
import path from 'node:path';
import { z } from 'zod';
import { AGENT_OPTIONS } from './options.ts';

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const Ms = z.coerce.number().int().min(0);

export const AgentConfigInput = z.object({
  /** Control plane base URL, used only for the first enrollment. */
  server: z.string().url().optional(),
  enrollToken: z.string().min(1).optional(),
  /** Device name sent at enrollment (defaults to the hostname on the server). */
  name: z.string().min(1).max(128).optional(),
  dataDir: z.string().min(1).default('./agent-data'),
  apiHost: z.string().min(1).default('127.0.0.1'),
  apiPort: z.coerce.number().int().min(0).max(65535).default(8481),
  /** A Unix socket the local API also listens on (local-api-socket.ts). */
  apiSocket: z.string().min(1).optional(),
  /** Root public key to pin: a file (JSON {keyid, publicKey} or base64 text) or the base64 key itself. */
  trustRoot: z.string().min(1).optional(),
  /** PEM file of the CA that the server's HTTPS and MQTT certificates must chain to (pinned in the identity). */
  ca: z.string().min(1).optional(),
  /** Overrides the artifact base URL handed out at enrollment (a mirror or CDN). */
  artifactUrl: z.string().url().optional(),
  logLevel: LogLevel.default('info'),
  /**
   * MQTT reconnect backoff: full jitter, the window doubling from min to max. A fleet dropped by a
   * restart returns within about max after the server does, at most N / max connects per second.
   */
  reconnectMinMs: Ms.default(1000),
  reconnectMaxMs: Ms.default(15_000),
  /**
   * Largest window while the broker's port refuses connections (a restarting control plane): a refused
   * TCP connect costs the server nothing, so devices keep probing every few seconds and are back within
   * about this long after it listens again (bench/reconnect.bench.ts's timeline), instead of up to max.
   */
  reconnectProbeMaxMs: Ms.default(4000),
  /**
   * How long one MQTT connect attempt (TCP handshake to CONNACK) may take. After a restart a busy broker
   * answers in its accept order: an attempt given up is work thrown away and a place in the queue lost,
   * and the retry queues again behind the rest of the fleet (bench/reconnect.bench.ts). MQTT.js's default.
   */
  mqttConnectTimeoutMs: Ms.default(30_000),
  /** Probation after activation: ends after this many requests or this long, whichever comes first. */
  probationMs: Ms.default(60_000),
  probationRequests: z.coerce.number().int().min(1).default(200),
  /** Roll back when, after at least `probationMinRequests`, this share of inferences failed. */
  probationMaxErrorRate: z.coerce.number().min(0).max(1).default(0.2),
  probationMinRequests: z.coerce.number().int().min(1).default(5),
  /** Download attempts more after failures that are not a busy or unreachable server's (agent/downloader.ts). */
  downloadRetries: z.coerce.number().int().min(0).max(100).default(5),
  /**
   * How long a download attempt waits for the server's answer. A starved server accepts connections one
   * per event-loop turn and answers in that order: at 1,000 devices its queue outlived a 30 s wait, and
   * every attempt given up left it a response to stream to nobody (bench/RESULTS.md, "Downloads in a herd").
   */
  downloadAnswerTimeoutMs: Ms.default(120_000),
  /**
   * Download splay: a random wait in [0, this) between accepting a manifest and fetching its files, so a
   * fleet deployed at once spreads its downloads instead of stampeding the artifact server
   * (bench/RESULTS.md, "Downloads in a herd"). 0 by default: the server's download gate already sheds a
   * herd (503 + Retry-After, waited out), and a single device or a staged rollout should not wait.
   */
  downloadSplayMs: Ms.default(0),
  /** A download attempt with no bytes for this long, once answered, is aborted (and resumed). */
  downloadIdleTimeoutMs: Ms.default(30_000),
  /** Upper bound of a whole update, download included; past it the update fails. */
  updateTimeoutMs: Ms.default(30 * 60_000),
  /** Bound of loading + smoke-testing a staged model, and of activation. */
  stepTimeoutMs: Ms.default(120_000),
  /**
   * Telemetry interval and stats window in seconds. Unset: the signed manifest's `agentConfig`
   * decides (defaults 10 and 60). Set: a local override that wins over the manifest (tests, or
   * pinning one device).
   */
  telemetryIntervalS: z.coerce.number().int().min(1).max(3600).optional(),
  statsWindowS: z.coerce.number().int().min(1).max(86_400).optional(),
  /** Input/output statistics (`stats` windows) on or off; telemetry is always on. */
  stats: z.enum(['on', 'off']).default('on'),
  /** Where models run: chosen per model by its run time (runtime/thread-choice.ts), their own worker thread, or the agent's thread (no hand-offs; runtime/inline-slot.ts). */
  inferenceThread: z.enum(['auto', 'worker', 'main']).default('auto'),
  /** Bound of the on-disk store-and-forward queue (stats windows, telemetry); the oldest go first. */
  outboxMaxBytes: z.coerce.number().int().min(64 * 1024).default(50 * 1024 * 1024),
  /** Bound of the on-disk queue of captured sample batches waiting for upload; the oldest go first. */
  sampleOutboxMaxBytes: z.coerce.number().int().min(64 * 1024).default(64 * 1024 * 1024),
});
export type AgentConfigInput = z.input<typeof AgentConfigInput>;

export interface AgentConfig extends Omit<z.output<typeof AgentConfigInput>, 'dataDir'> {
  /** Absolute data directory. */
  dataDir: string;
}

/** Where each option comes from, for error messages: flag name and environment variable (options.ts). */
export const OPTION_SOURCES = Object.fromEntries(AGENT_OPTIONS.map((o) => [o.key, { flag: o.flag, env: o.env }])) as Record<keyof z.output<typeof AgentConfigInput>, { flag: string; env: string }>;

/** Thrown for a bad option; the message is one line naming where the value came from. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Validates merged options. `from` says, per key, whether the value came from a flag or the
 * environment, so the error names the thing the user actually typed.
 */
export function parseAgentConfig(input: Record<string, unknown>, from: Partial<Record<string, 'flag' | 'env'>> = {}): AgentConfig {
  const parsed = AgentConfigInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue.path[0]) as keyof typeof OPTION_SOURCES;
    const src = OPTION_SOURCES[key];
    const where = src ? (from[key] === 'env' ? src.env : src.flag) : key;
    throw new ConfigError(`invalid ${where}: ${issue.message}`);
  }
  const c = parsed.data;
  if (c.reconnectMaxMs < c.reconnectMinMs) throw new ConfigError('invalid --reconnect-max-ms: must be >= --reconnect-min-ms');
  return { ...c, dataDir: path.resolve(c.dataDir) };
}
