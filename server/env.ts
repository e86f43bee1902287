// The control plane's configuration: parsed once from FLOTILLA_* variables; nothing else reads process.env.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { parseWindowSeconds } from './ingest/buckets.ts';

const ServerEnv = z.object({
  FLOTILLA_HTTP_HOST: z.string().default('0.0.0.0'),
  FLOTILLA_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Port of the embedded MQTT broker (ignored when FLOTILLA_MQTT_URL points at an external broker). */
  FLOTILLA_MQTT_PORT: z.coerce.number().int().min(0).max(65535).default(1883),
  FLOTILLA_MQTT_HOST: z.string().default('0.0.0.0'),
  /** External broker; when unset the server embeds aedes. */
  FLOTILLA_MQTT_URL: z.string().url().optional(),
  /** Broker URL handed to devices at enrollment (defaults to the embedded broker on this host). */
  FLOTILLA_PUBLIC_MQTT_URL: z.string().url().optional(),
  /** Server URL handed to devices for artifact downloads (defaults to the request's origin). */
  FLOTILLA_PUBLIC_URL: z.string().url().optional(),
  FLOTILLA_DATA_DIR: z.string().default('./data'),
  FLOTILLA_DB_URL: z.string().optional(),
  /** SQLite's `synchronous` for a local database file (WAL): `normal` syncs at checkpoints, `full` at every commit. */
  FLOTILLA_DB_SYNCHRONOUS: z.enum(['normal', 'full']).default('normal'),
  FLOTILLA_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(2 * 1024 ** 3),
  FLOTILLA_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Raw stats windows and telemetry reports are deleted after this many hours (rollups stay). */
  FLOTILLA_STATS_RETENTION_HOURS: z.coerce.number().positive().default(72),
  /** Per-minute rollups are deleted after this many hours (per-hour rollups stay). */
  FLOTILLA_MINUTE_ROLLUP_RETENTION_HOURS: z.coerce.number().positive().default(168),
  /** Captured samples are deleted this many days after they were taken. */
  FLOTILLA_SAMPLES_RETENTION_DAYS: z.coerce.number().positive().default(30),
  /** Ingest writes one transaction per this many ms or per FLOTILLA_INGEST_BATCH messages, whichever comes first. */
  FLOTILLA_INGEST_FLUSH_MS: z.coerce.number().int().min(1).max(10_000).default(200),
  FLOTILLA_INGEST_BATCH: z.coerce.number().int().min(1).max(5000).default(500),
  /** node-cron schedule of drift evaluation, or `off` (another replica runs it). */
  FLOTILLA_DRIFT_CRON: z
    .string()
    .default('* * * * *')
    .refine((v) => v === 'off' || cron.validate(v), 'not a cron expression (or "off")'),
  /** The window each scheduled evaluation looks at, e.g. 15m, 1h. */
  /** How long a signed deployment manifest is valid; manifests are re-signed when a third of this remains. */
  FLOTILLA_MANIFEST_TTL_S: z.coerce.number().int().min(60).default(30 * 86400),
  FLOTILLA_DRIFT_WINDOW: z
    .string()
    .default('1h')
    .refine((v) => parseWindowSeconds(v) !== null, 'expected a duration such as 15m, 1h or 1d'),
  /** Alerts are POSTed here as JSON when set. */
  FLOTILLA_ALERT_WEBHOOK_URL: z.string().url().optional(),
  /** HMAC-SHA256 key for the webhook's x-flotilla-signature header. */
  FLOTILLA_ALERT_WEBHOOK_SECRET: z.string().min(1).optional(),
  /** Attempts per alert webhook delivery before it is marked failed. */
  FLOTILLA_ALERT_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  /** How often the webhook worker looks for due deliveries (it is also woken by each new alert event). */
  FLOTILLA_ALERT_WEBHOOK_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  /** Delivered webhook deliveries are deleted after this many days (failed ones are kept). */
  FLOTILLA_ALERT_DELIVERY_RETENTION_DAYS: z.coerce.number().positive().default(30),
  /** `off`: this replica never runs the retraining scheduler, job runner and rollout ticker (another one holds the lease). */
  FLOTILLA_SCHEDULER: z.enum(['on', 'off']).default('on'),
  /** How often the lease holder recovers jobs, checks drift triggers, starts jobs and advances rollouts. */
  FLOTILLA_SCHEDULER_TICK_MS: z.coerce.number().int().min(50).max(60_000).default(2000),
  /** A replica that stops renewing the scheduler lease loses it after this long. */
  FLOTILLA_SCHEDULER_LEASE_TTL_S: z.coerce.number().min(0.3).max(600).default(15),
  /** Device credential checks the embedded broker runs at once; beyond it a CONNECT gets CONNACK 3 "server unavailable" (agents back off). */
  FLOTILLA_MQTT_MAX_PENDING_CONNECTS: z.coerce.number().int().min(1).max(100_000).default(100),
  /** Accept queue of the embedded broker's MQTT listener (capped by net.core.somaxconn); see embedded-broker.ts. */
  FLOTILLA_MQTT_LISTEN_BACKLOG: z.coerce.number().int().min(1).max(65_535).default(4096),
  /** Artifact downloads streaming at once; past it a download is answered 503 + Retry-After (agents wait and retry). */
  FLOTILLA_ARTIFACT_MAX_DOWNLOADS: z.coerce.number().int().min(1).max(100_000).default(256),
  /** The Retry-After (seconds) of a shed artifact download; agents add up to as much again of jitter. */
  FLOTILLA_ARTIFACT_RETRY_AFTER_S: z.coerce.number().int().min(1).max(300).default(5),
  /** An artifact download whose client takes no bytes for this long is closed and its slot freed. */
  FLOTILLA_ARTIFACT_IDLE_TIMEOUT_S: z.coerce.number().int().min(1).max(3600).default(60),
  /** Presence and `reported` writes are coalesced per device and written at most this long after the first one. */
  FLOTILLA_DEVICE_STATE_FLUSH_MS: z.coerce.number().int().min(1).max(10_000).default(250),
  /** Training jobs run at once on the lease holder. */
  FLOTILLA_JOB_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  /** Delay before a failed attempt is retried; doubles per attempt (at most a minute). */
  FLOTILLA_JOB_RETRY_BACKOFF_MS: z.coerce.number().int().min(0).max(60_000).default(5000),
  /** Key that encrypts release private keys at rest (32 bytes, base64 or hex); see also _FILE. */
  FLOTILLA_KEY_ENCRYPTION_KEY: z.string().min(1).optional(),
  /** File holding that key; default `<data dir>/key-encryption.key`, generated (0600) on first start. */
  FLOTILLA_KEY_ENCRYPTION_KEY_FILE: z.string().min(1).optional(),
  /** Warn (log, `flotilla keys show`) when the key list expires within this many days. */
  FLOTILLA_KEYLIST_WARN_DAYS: z.coerce.number().min(0).max(3650).default(30),
  /** A device whose active bundle differs from its desired one for this long is shown as stale and its desired state re-published. */
  FLOTILLA_DESIRED_STALE_AFTER_S: z.coerce.number().int().min(1).max(30 * 86400).default(900),
  /** How often each replica reads new events for its open event streams. */
  FLOTILLA_EVENTS_POLL_MS: z.coerce.number().int().min(20).max(10_000).default(250),
  /** A `: keep-alive` comment goes down an idle event stream this often. */
  FLOTILLA_EVENTS_KEEPALIVE_MS: z.coerce.number().int().min(100).max(300_000).default(15_000),
  /** Events are deleted after this many days. */
  FLOTILLA_EVENTS_RETENTION_DAYS: z.coerce.number().positive().default(7),
  /** Largest MQTT packet the embedded broker accepts; a bigger one closes the connection (see README for the measured largest legit message). */
  FLOTILLA_MQTT_MAX_PACKET_BYTES: z.coerce.number().int().min(1024).max(256 * 1024 ** 2).default(4 * 1024 ** 2),
  /** Sustained messages per second each device may send on each of `telemetry`, `stats`, `reported`. */
  FLOTILLA_MQTT_RATE_PER_S: z.coerce.number().positive().max(100_000).default(10),
  /** Messages a device may send at once per channel (its outbox after a reconnect) before the rate applies. */
  FLOTILLA_MQTT_RATE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(300),
  /** Dropped messages (over-rate or oversize) within FLOTILLA_MQTT_STRIKE_WINDOW_S that get a device disconnected. */
  FLOTILLA_MQTT_STRIKES: z.coerce.number().int().min(1).max(1_000_000).default(50),
  FLOTILLA_MQTT_STRIKE_WINDOW_S: z.coerce.number().positive().max(86_400).default(60),
  /** How long a device disconnected for persisting is refused at connect. */
  FLOTILLA_MQTT_BACKOFF_S: z.coerce.number().min(0).max(86_400).default(300),
  /** PEM certificate chain and key: HTTPS, MQTT over TLS and (with FLOTILLA_MQTT_WS_PORT) MQTT over secure WebSocket. */
  FLOTILLA_TLS_CERT: z.string().min(1).optional(),
  FLOTILLA_TLS_KEY: z.string().min(1).optional(),
  /** PEM of the CA devices pin for HTTPS and MQTT (handed out at enrollment). */
  FLOTILLA_TLS_CA: z.string().min(1).optional(),
  /** Port of the embedded broker's MQTT over WebSocket listener (path /mqtt); unset: none. */
  FLOTILLA_MQTT_WS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** External broker: the server's own login (default flotilla-server). */
  FLOTILLA_MQTT_USERNAME: z.string().min(1).default('flotilla-server'),
  /** External broker: the server's password; with the dynamic-security admin set, derived from its password when unset. */
  FLOTILLA_MQTT_PASSWORD: z.string().min(1).optional(),
  /** Mosquitto's dynamic-security admin: set both to have the server provision device clients and roles. */
  FLOTILLA_MQTT_ADMIN_USERNAME: z.string().min(1).optional(),
  FLOTILLA_MQTT_ADMIN_PASSWORD: z.string().min(1).optional(),
  /** With the dynamic-security admin set: reconcile Mosquitto's device clients with the database this often (0: only at start and on demand). */
  FLOTILLA_BROKER_RECONCILE_S: z.coerce.number().int().min(0).max(7 * 86400).default(300),
  /** External broker: this replica's MQTT client id, stable across restarts (its persistent session). */
  FLOTILLA_MQTT_CLIENT_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (at most 64)').optional(),
  /** External broker: how long the broker keeps this replica's session (and messages for it) while it is away. */
  FLOTILLA_MQTT_SESSION_EXPIRY_S: z.coerce.number().int().min(0).max(4_294_967_295).default(86_400),
  /** Bearer token EMQX sends to /mqtt/auth and /mqtt/authz (HTTP authentication and authorization); unset: those routes are off. */
  FLOTILLA_MQTT_HOOK_TOKEN: z.string().min(16).optional(),
});

export interface ServerConfig {
  httpHost: string;
  httpPort: number;
  mqttHost: string;
  mqttPort: number;
  externalMqttUrl?: string;
  publicMqttUrl?: string;
  publicUrl?: string;
  dataDir: string;
  dbUrl: string;
  /** `PRAGMA synchronous` on every writing connection of a local database file (ignored for libsql:// servers). */
  dbSynchronous: 'normal' | 'full';
  maxUploadBytes: number;
  logLevel: z.infer<typeof ServerEnv>['FLOTILLA_LOG_LEVEL'];
  statsRetentionHours: number;
  minuteRollupRetentionHours: number;
  samplesRetentionDays: number;
  ingestFlushMs: number;
  ingestBatchSize: number;
  /** A node-cron expression, or 'off'. */
  driftCron: string;
  driftWindowS: number;
  alertWebhookUrl?: string;
  alertWebhookSecret?: string;
  alertWebhookMaxAttempts: number;
  alertWebhookPollMs: number;
  /** Base of the exponential retry backoff (tests shorten it; not an environment variable). */
  alertWebhookBaseDelayMs?: number;
  alertDeliveryRetentionDays: number;
  manifestTtlS: number;
  schedulerEnabled: boolean;
  schedulerTickMs: number;
  schedulerLeaseTtlMs: number;
  jobConcurrency: number;
  jobRetryBackoffMs: number;
  keyEncryptionKey?: string;
  keyEncryptionKeyFile?: string;
  keylistWarnS: number;
  desiredStaleAfterS: number;
  eventsPollMs: number;
  eventsKeepAliveMs: number;
  eventsRetentionDays: number;
  mqttLimits: MqttLimits;
  /** Certificate and key (PEM) when the server terminates TLS itself. */
  tls?: { certPem: string; keyPem: string };
  /** The CA (PEM) devices pin, handed out at enrollment. */
  tlsCaPem?: string;
  mqttWsPort?: number;
  mqttMaxPendingConnects: number;
  mqttListenBacklog: number;
  /** Artifact downloads streaming at once before 503 + Retry-After (server/artifacts/download-gate.ts). */
  artifactMaxDownloads: number;
  artifactRetryAfterS: number;
  /** A download whose client took no bytes for this long is closed (server/artifacts/idle-download.ts). */
  artifactIdleTimeoutS: number;
  deviceStateFlushMs: number;
  /** How the server logs in to an external broker (FLOTILLA_MQTT_URL). */
  externalBroker: ExternalBrokerConfig;
  /** Token of the EMQX HTTP auth/authz hooks (server/broker/emqx-hooks.ts); unset: off. */
  mqttHookToken?: string;
  /** Seconds between reconciles of Mosquitto's device clients (0: at start and on demand only). */
  brokerReconcileS: number;
}

export interface ExternalBrokerConfig {
  username: string;
  password: string;
  /** Mosquitto dynamic-security admin: device clients and roles are provisioned through it. */
  admin?: { username: string; password: string };
  clientId: string;
  sessionExpiryS: number;
}

/** Bounds on what one device may send to the embedded broker (server/broker/). */
export interface MqttLimits {
  maxPacketBytes: number;
  ratePerS: number;
  burst: number;
  strikes: number;
  strikeWindowMs: number;
  backoffMs: number;
}

/** Parses the environment; throws one line naming the bad variable. */
export function loadServerConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const parsed = ServerEnv.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid environment: ${String(issue.path[0])}: ${issue.message}`);
  }
  const e = parsed.data;
  if (!e.FLOTILLA_TLS_CERT !== !e.FLOTILLA_TLS_KEY) throw new Error('invalid environment: FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY go together');
  const pem = (name: string, file: string | undefined) => {
    if (!file) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`invalid environment: ${name}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const dataDir = path.resolve(e.FLOTILLA_DATA_DIR);
  return {
    httpHost: e.FLOTILLA_HTTP_HOST,
    httpPort: e.FLOTILLA_HTTP_PORT,
    mqttHost: e.FLOTILLA_MQTT_HOST,
    mqttPort: e.FLOTILLA_MQTT_PORT,
    externalMqttUrl: e.FLOTILLA_MQTT_URL,
    publicMqttUrl: e.FLOTILLA_PUBLIC_MQTT_URL,
    publicUrl: e.FLOTILLA_PUBLIC_URL,
    dataDir,
    dbUrl: e.FLOTILLA_DB_URL ?? `file:${path.join(dataDir, 'flotilla.db')}`,
    dbSynchronous: e.FLOTILLA_DB_SYNCHRONOUS,
    maxUploadBytes: e.FLOTILLA_MAX_UPLOAD_BYTES,
    logLevel: e.FLOTILLA_LOG_LEVEL,
    statsRetentionHours: e.FLOTILLA_STATS_RETENTION_HOURS,
    minuteRollupRetentionHours: e.FLOTILLA_MINUTE_ROLLUP_RETENTION_HOURS,
    samplesRetentionDays: e.FLOTILLA_SAMPLES_RETENTION_DAYS,
    ingestFlushMs: e.FLOTILLA_INGEST_FLUSH_MS,
    ingestBatchSize: e.FLOTILLA_INGEST_BATCH,
    driftCron: e.FLOTILLA_DRIFT_CRON,
    driftWindowS: parseWindowSeconds(e.FLOTILLA_DRIFT_WINDOW)!,
    alertWebhookUrl: e.FLOTILLA_ALERT_WEBHOOK_URL,
    alertWebhookSecret: e.FLOTILLA_ALERT_WEBHOOK_SECRET,
    alertWebhookMaxAttempts: e.FLOTILLA_ALERT_WEBHOOK_MAX_ATTEMPTS,
    alertWebhookPollMs: e.FLOTILLA_ALERT_WEBHOOK_POLL_MS,
    alertDeliveryRetentionDays: e.FLOTILLA_ALERT_DELIVERY_RETENTION_DAYS,
    manifestTtlS: e.FLOTILLA_MANIFEST_TTL_S,
    schedulerEnabled: e.FLOTILLA_SCHEDULER === 'on',
    schedulerTickMs: e.FLOTILLA_SCHEDULER_TICK_MS,
    schedulerLeaseTtlMs: Math.round(e.FLOTILLA_SCHEDULER_LEASE_TTL_S * 1000),
    jobConcurrency: e.FLOTILLA_JOB_CONCURRENCY,
    jobRetryBackoffMs: e.FLOTILLA_JOB_RETRY_BACKOFF_MS,
    keyEncryptionKey: e.FLOTILLA_KEY_ENCRYPTION_KEY,
    keyEncryptionKeyFile: e.FLOTILLA_KEY_ENCRYPTION_KEY_FILE ? path.resolve(e.FLOTILLA_KEY_ENCRYPTION_KEY_FILE) : undefined,
    keylistWarnS: Math.round(e.FLOTILLA_KEYLIST_WARN_DAYS * 86400),
    desiredStaleAfterS: e.FLOTILLA_DESIRED_STALE_AFTER_S,
    eventsPollMs: e.FLOTILLA_EVENTS_POLL_MS,
    eventsKeepAliveMs: e.FLOTILLA_EVENTS_KEEPALIVE_MS,
    eventsRetentionDays: e.FLOTILLA_EVENTS_RETENTION_DAYS,
    mqttLimits: {
      maxPacketBytes: e.FLOTILLA_MQTT_MAX_PACKET_BYTES,
      ratePerS: e.FLOTILLA_MQTT_RATE_PER_S,
      burst: e.FLOTILLA_MQTT_RATE_BURST,
      strikes: e.FLOTILLA_MQTT_STRIKES,
      strikeWindowMs: Math.round(e.FLOTILLA_MQTT_STRIKE_WINDOW_S * 1000),
      backoffMs: Math.round(e.FLOTILLA_MQTT_BACKOFF_S * 1000),
    },
    tls: e.FLOTILLA_TLS_CERT ? { certPem: pem('FLOTILLA_TLS_CERT', e.FLOTILLA_TLS_CERT)!, keyPem: pem('FLOTILLA_TLS_KEY', e.FLOTILLA_TLS_KEY)! } : undefined,
    tlsCaPem: pem('FLOTILLA_TLS_CA', e.FLOTILLA_TLS_CA),
    mqttWsPort: e.FLOTILLA_MQTT_WS_PORT,
    mqttMaxPendingConnects: e.FLOTILLA_MQTT_MAX_PENDING_CONNECTS,
    mqttListenBacklog: e.FLOTILLA_MQTT_LISTEN_BACKLOG,
    artifactMaxDownloads: e.FLOTILLA_ARTIFACT_MAX_DOWNLOADS,
    artifactRetryAfterS: e.FLOTILLA_ARTIFACT_RETRY_AFTER_S,
    artifactIdleTimeoutS: e.FLOTILLA_ARTIFACT_IDLE_TIMEOUT_S,
    deviceStateFlushMs: e.FLOTILLA_DEVICE_STATE_FLUSH_MS,
    externalBroker: externalBrokerConfig(e),
    mqttHookToken: e.FLOTILLA_MQTT_HOOK_TOKEN,
    brokerReconcileS: e.FLOTILLA_BROKER_RECONCILE_S,
  };
}

function externalBrokerConfig(e: z.infer<typeof ServerEnv>): ExternalBrokerConfig {
  if (!e.FLOTILLA_MQTT_ADMIN_USERNAME !== !e.FLOTILLA_MQTT_ADMIN_PASSWORD) {
    throw new Error('invalid environment: FLOTILLA_MQTT_ADMIN_USERNAME and FLOTILLA_MQTT_ADMIN_PASSWORD go together');
  }
  const admin = e.FLOTILLA_MQTT_ADMIN_USERNAME ? { username: e.FLOTILLA_MQTT_ADMIN_USERNAME, password: e.FLOTILLA_MQTT_ADMIN_PASSWORD! } : undefined;
  // Every replica derives the same server password from the admin's, so one secret configures them all.
  const password =
    e.FLOTILLA_MQTT_PASSWORD ??
    (admin ? createHmac('sha256', admin.password).update('flotilla-server-mqtt').digest('base64url') : randomBytes(24).toString('base64url'));
  return {
    username: e.FLOTILLA_MQTT_USERNAME,
    password,
    admin,
    clientId: e.FLOTILLA_MQTT_CLIENT_ID ?? `flotilla-server-${hostname()}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64),
    sessionExpiryS: e.FLOTILLA_MQTT_SESSION_EXPIRY_S,
  };
}
