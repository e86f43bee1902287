// The database schema: the source of truth; migrations are generated from it with `npm run db:generate`.
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import type { MonitoringHealth, MonitoringLost } from '../../protocol/messages/telemetry.ts';
import type { FeatureSetSketch, LatencyHistogram, SketchLayout } from '../../protocol/sketch/index.ts';
import type { VersionFacts } from '../models/version-facts.ts';
import { sketchColumn } from './sketch-column.ts';

const createdAt = (column = 'created_at') => text(column).notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`);

export const apiTokens = sqliteTable('api_tokens', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  role: text('role', { enum: ['admin', 'ml-engineer', 'operator', 'viewer'] }).notNull(),
  /** sha256 of the secret: tokens are 256-bit random, so a fast hash is enough and keeps lookups indexable. */
  tokenHash: text('token_hash').notNull().unique(),
  createdAt: createdAt(),
  createdBy: text('created_by'),
  expiresAt: text('expires_at'),
  revokedAt: text('revoked_at'),
  lastUsedAt: text('last_used_at'),
});

export const artifacts = sqliteTable('artifacts', {
  sha256: text('sha256').primaryKey(),
  size: integer('size').notNull(),
  mediaType: text('media_type').notNull(),
  createdAt: createdAt(),
});

export const models = sqliteTable('models', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  description: text('description'),
  createdAt: createdAt(),
  /** Quality and fairness budgets every new version and variant is gated on (null = defaults). */
  budgets: text('budgets', { mode: 'json' }).$type<Record<string, unknown> | null>(),
});

export const modelVersions = sqliteTable(
  'model_versions',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    modelId: integer('model_id').notNull().references(() => models.id),
    version: integer('version').notNull(),
    artifactSha256: text('artifact_sha256').notNull().references(() => artifacts.sha256),
    size: integer('size').notNull(),
    format: text('format').notNull().default('onnx'),
    irVersion: integer('ir_version'),
    opset: integer('opset'),
    producer: text('producer'),
    inputs: text('inputs', { mode: 'json' }).notNull(),
    outputs: text('outputs', { mode: 'json' }).notNull(),
    paramCount: integer('param_count').notNull(),
    initializerBytes: integer('initializer_bytes').notNull(),
    notes: text('notes'),
    metrics: text('metrics', { mode: 'json' }).notNull(),
    tags: text('tags', { mode: 'json' }).notNull(),
    parentVersionId: integer('parent_version_id'),
    createdAt: createdAt(),
    createdBy: text('created_by'),
    /**
     * `ready` may be rolled out; `rejected` broke a quality or fairness budget (`statusReason` says
     * which) and is refused by bundle builds unless an admin override is recorded in `override`.
     */
    status: text('status', { enum: ['ready', 'rejected'] }).notNull().default('ready'),
    statusReason: text('status_reason'),
    /** `{ by, at, reason }` when an admin allowed a rejected version to roll out (audited too). */
    override: text('override', { mode: 'json' }).$type<{ by: string; at: string; reason: string } | null>(),
    /** For optimized children: `int8`, `pruned`, `int8+pruned`, …, and the recipe that made it. */
    variant: text('variant'),
    recipe: text('recipe', { mode: 'json' }).$type<Record<string, unknown> | null>(),
    /** The evaluation report against the parent / champion (metrics, size, latency, governance). */
    evaluation: text('evaluation', { mode: 'json' }).$type<Record<string, unknown> | null>(),
    /** Where a trained version came from: job, dataset version, trainer, parameters. */
    lineage: text('lineage', { mode: 'json' }).$type<Record<string, unknown> | null>(),
    /**
     * What the registry learned from the file beyond the columns above (issue 17): weight element
     * types, tree ensemble size, existing quantization, and a rewrite made at push (`imported`:
     * the original file's hash and what was changed, e.g. ZipMap removed).
     */
    facts: text('facts', { mode: 'json' }).$type<VersionFacts | null>(),
  },
  (t) => [uniqueIndex('model_versions_model_version').on(t.modelId, t.version), index('model_versions_parent').on(t.parentVersionId)],
);

export const modelAliases = sqliteTable(
  'model_aliases',
  {
    modelId: integer('model_id').notNull().references(() => models.id),
    alias: text('alias').notNull(),
    versionId: integer('version_id').notNull().references(() => modelVersions.id),
    updatedAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.modelId, t.alias] }), index('model_aliases_version').on(t.versionId)],
);

export const enrollTokens = sqliteTable('enroll_tokens', {
  id: text('id').primaryKey(),
  tokenHash: text('token_hash').notNull().unique(),
  labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull(),
  autoApprove: integer('auto_approve', { mode: 'boolean' }).notNull(),
  expiresAt: text('expires_at'),
  maxUses: integer('max_uses'),
  uses: integer('uses').notNull().default(0),
  createdAt: createdAt(),
  createdBy: text('created_by'),
  revokedAt: text('revoked_at'),
});

export const devices = sqliteTable(
  'devices',
  {
    id: text('id').primaryKey(),
    name: text('name'),
    status: text('status', { enum: ['pending', 'approved', 'revoked'] }).notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    facts: text('facts', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    /** Hash of the MQTT/HTTP device secret: `sha256$…`, or `scrypt$…` until the device's next connect (auth/device-credentials.ts). */
    credentialHash: text('credential_hash').notNull(),
    enrollTokenId: text('enroll_token_id'),
    enrolledAt: createdAt(),
    approvedAt: text('approved_at'),
    revokedAt: text('revoked_at'),
    online: integer('online', { mode: 'boolean' }).notNull().default(false),
    lastSeen: text('last_seen'),
    /** The device's last `reported` message (active bundle, update state, last error). */
    reported: text('reported', { mode: 'json' }),
    updateState: text('update_state'),
  },
  (t) => [index('devices_status').on(t.status)],
);

export const cohorts = sqliteTable('cohorts', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  selector: text('selector').notNull(),
  description: text('description'),
  createdAt: createdAt(),
  /** Variant this cohort's devices get when a promoted version has a ready child of it (e.g. `int8`). */
  preferVariant: text('prefer_variant'),
});

/** Runtime settings for agents (telemetry interval, stats window, sample capture), per cohort or device; they ride in the signed manifest. */
export const agentSettings = sqliteTable(
  'agent_settings',
  {
    scope: text('scope', { enum: ['cohort', 'device'] }).notNull(),
    target: text('target').notNull(),
    settings: text('settings', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    updatedAt: createdAt('updated_at'),
    updatedBy: text('updated_by'),
  },
  (t) => [primaryKey({ columns: [t.scope, t.target] })],
);

export const auditLog = sqliteTable(
  'audit_log',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: createdAt(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    target: text('target').notNull(),
    details: text('details', { mode: 'json' }),
  },
  (t) => [index('audit_log_at').on(t.at)],
);

/** Release keys: the server signs deployment manifests with them; the offline root lists them. */
export const releaseKeys = sqliteTable('release_keys', {
  keyid: text('keyid').primaryKey(),
  publicKey: text('public_key').notNull(),
  /**
   * The private key, encrypted at rest (`enc:v1:…`, AES-256-GCM under FLOTILLA_KEY_ENCRYPTION_KEY, see
   * keys/key-cipher.ts); null once the key is retired (a retired key must not be able to sign again).
   */
  privateKeyPem: text('private_key_pem'),
  createdAt: createdAt(),
  retiredAt: text('retired_at'),
});

/** Root-signed key lists, newest version wins. */
export const keyLists = sqliteTable('key_lists', {
  version: integer('version').primaryKey(),
  rootKeyid: text('root_keyid').notNull(),
  envelope: text('envelope', { mode: 'json' }).notNull(),
  createdAt: createdAt(),
  createdBy: text('created_by'),
});

export const bundles = sqliteTable(
  'bundles',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    modelVersionId: integer('model_version_id').notNull().references(() => modelVersions.id),
    /** The resolved definition (labels inlined, smoke vectors filled in) as shipped in bundle.json. */
    definition: text('definition', { mode: 'json' }).notNull(),
    files: text('files', { mode: 'json' }).$type<Array<{ path: string; sha256: string; size: number }>>().notNull(),
    minAgentVersion: text('min_agent_version').notNull(),
    createdAt: createdAt(),
    createdBy: text('created_by'),
  },
  (t) => [index('bundles_model_version').on(t.modelVersionId), index('bundles_name').on(t.name)],
);

export const deployments = sqliteTable('deployments', {
  id: text('id').primaryKey(),
  bundleId: text('bundle_id').notNull().references(() => bundles.id),
  targetKind: text('target_kind', { enum: ['device', 'cohort'] }).notNull(),
  target: text('target').notNull(),
  deviceCount: integer('device_count').notNull(),
  createdAt: createdAt(),
  createdBy: text('created_by'),
  /** `deploy`, or `rollback` when `flotilla devices rollback` signed it (shown in the serving history). */
  kind: text('kind', { enum: ['deploy', 'rollback'] }).notNull().default('deploy'),
});

/** Each device's desired state: the signed manifest published (retained) on its `desired` topic. */
export const deviceDesired = sqliteTable(
  'device_desired',
  {
    deviceId: text('device_id').primaryKey().references(() => devices.id),
    /** Monotonic per device; never reused, even when the bundle stays the same. */
    counter: integer('counter').notNull(),
    bundleId: text('bundle_id').notNull().references(() => bundles.id),
    deploymentId: text('deployment_id'),
    cohort: text('cohort'),
    manifest: text('manifest', { mode: 'json' }).notNull(),
    expiresAt: text('expires_at').notNull(),
    updatedAt: createdAt(),
    /** The bundle desired before this one (what `flotilla devices rollback` signs a new manifest for). */
    previousBundleId: text('previous_bundle_id'),
    /** Since when the device's reported active bundle differs from the desired one (null: they agree). */
    mismatchSince: text('mismatch_since'),
    /** When the desired state was last re-published because it stayed stale. */
    republishedAt: text('republished_at'),
    /** A shadow candidate signed into the manifest beside the bundle (a rollout's shadow stage); re-signs keep it. */
    shadow: text('shadow', { mode: 'json' }).$type<{ rolloutId: string; bundleId: string; share: number; windowS: number } | null>(),
  },
  (t) => [index('device_desired_bundle').on(t.bundleId)],
);

// ---- Monitoring: reference profiles, drift settings, device statistics and telemetry, drift alerts, ground truth.
// High-volume tables (windows, rollups, telemetry) carry plain ids without foreign keys: an FK check per
// insert costs ingest throughput, and a version with statistics has bundles, so it cannot be deleted anyway.

/** A version's reference profile: the layout (bin edges, categories, outputs) and the reference dataset's own sketch. */
export const referenceProfiles = sqliteTable('reference_profiles', {
  modelVersionId: integer('model_version_id')
    .primaryKey()
    .references(() => modelVersions.id, { onDelete: 'cascade' }),
  layout: text('layout', { mode: 'json' }).$type<SketchLayout>().notNull(),
  sketch: text('sketch', { mode: 'json' }).$type<FeatureSetSketch>().notNull(),
  rows: integer('rows').notNull(),
  bins: integer('bins').notNull(),
  source: text('source').notNull(),
  createdAt: createdAt(),
  createdBy: text('created_by'),
});

/** Per-model drift evaluation settings (protocol `DriftConfig` input; defaults apply when absent). */
export const driftConfigs = sqliteTable('drift_configs', {
  modelId: integer('model_id')
    .primaryKey()
    .references(() => models.id, { onDelete: 'cascade' }),
  config: text('config', { mode: 'json' }).notNull(),
  updatedAt: text('updated_at').notNull(),
  updatedBy: text('updated_by'),
});

/** Raw `stats` windows as received (deduplicated on device + seq); expire after the retention period. */
export const statsWindows = sqliteTable(
  'stats_windows',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id').notNull(),
    modelVersionId: integer('model_version_id').notNull(),
    bundleId: text('bundle_id').notNull(),
    windowStart: text('window_start').notNull(),
    windowEnd: text('window_end').notNull(),
    seq: integer('seq').notNull(),
    rows: integer('rows').notNull(),
    // Binary (protocol/sketch/sketch-blob.ts); rows from before are JSON text and still read.
    sketch: sketchColumn('sketch').notNull(),
    receivedAt: text('received_at').notNull(),
  },
  (t) => [uniqueIndex('stats_windows_device_seq').on(t.deviceId, t.seq), index('stats_windows_end').on(t.windowEnd), index('stats_windows_version_start').on(t.modelVersionId, t.windowStart)],
);

/** Merged sketches per device / cohort / whole fleet ('*'), per model version, per minute and per hour. */
export const statsRollups = sqliteTable(
  'stats_rollups',
  {
    scope: text('scope', { enum: ['device', 'cohort', 'fleet'] }).notNull(),
    key: text('key').notNull(),
    modelVersionId: integer('model_version_id').notNull(),
    granularity: text('granularity', { enum: ['minute', 'hour'] }).notNull(),
    bucketStart: text('bucket_start').notNull(),
    windows: integer('windows').notNull(),
    rows: integer('rows').notNull(),
    // Binary (protocol/sketch/sketch-blob.ts); rows from before are JSON text and still read.
    sketch: sketchColumn('sketch').notNull(),
    updatedAt: text('updated_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.scope, t.key, t.modelVersionId, t.granularity, t.bucketStart] }),
    // For "which cohorts had windows lately" and retention; leading with scope leaves point lookups to the primary key.
    index('stats_rollups_scope_bucket').on(t.scope, t.granularity, t.bucketStart),
  ],
);

/**
 * `stats` windows refused against the reference (no reference yet, other bins, missing features), per
 * hour, model version, device and reason: what `flotilla drift` shows as dropped, with what to do.
 */
export const statsDrops = sqliteTable(
  'stats_drops',
  {
    modelVersionId: integer('model_version_id').notNull(),
    deviceId: text('device_id').notNull(),
    reason: text('reason').notNull(),
    bucketStart: text('bucket_start').notNull(),
    windows: integer('windows').notNull(),
    rows: integer('rows').notNull(),
    lastAt: text('last_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.modelVersionId, t.bucketStart, t.reason, t.deviceId] }), index('stats_drops_bucket').on(t.bucketStart)],
);

/** Raw `telemetry` reports (deduplicated on device + seq); expire with the stats retention. */
export const telemetry = sqliteTable(
  'telemetry',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id').notNull(),
    seq: integer('seq').notNull(),
    at: text('at').notNull(),
    intervalS: real('interval_s').notNull(),
    inferences: integer('inferences').notNull(),
    errors: text('errors', { mode: 'json' }).$type<Record<string, number>>().notNull(),
    latency: text('latency', { mode: 'json' }).$type<LatencyHistogram>().notNull(),
    queueDepth: integer('queue_depth').notNull(),
    cpu: real('cpu').notNull(),
    rssBytes: integer('rss_bytes').notNull(),
    diskFreeBytes: integer('disk_free_bytes').notNull(),
    uptimeS: real('uptime_s').notNull(),
    activeBundleId: text('active_bundle_id'),
    /** Monitoring data the device lost (deltas) and its outbox backlog; null from agents that do not send it. */
    monitoring: text('monitoring', { mode: 'json' }).$type<MonitoringHealth>(),
    receivedAt: text('received_at').notNull(),
  },
  (t) => [uniqueIndex('telemetry_device_seq').on(t.deviceId, t.seq), index('telemetry_at').on(t.at)],
);

/** Telemetry per device / cohort / fleet ('*') per minute: counters, merged latency, the time span covered. */
export const telemetryRollups = sqliteTable(
  'telemetry_rollups',
  {
    scope: text('scope', { enum: ['device', 'cohort', 'fleet'] }).notNull(),
    key: text('key').notNull(),
    bucketStart: text('bucket_start').notNull(),
    reports: integer('reports').notNull(),
    inferences: integer('inferences').notNull(),
    errorCount: integer('error_count').notNull(),
    errors: text('errors', { mode: 'json' }).$type<Record<string, number>>().notNull(),
    latency: text('latency', { mode: 'json' }).$type<LatencyHistogram>().notNull(),
    /** Earliest interval start (at − intervalS) and latest report time: the span the counters cover. */
    firstStart: text('first_start').notNull(),
    lastAt: text('last_at').notNull(),
    /** Sums of the monitoring data the devices lost (kept apart from `errors`); null when no report carried it. */
    monitoringLost: text('monitoring_lost', { mode: 'json' }).$type<MonitoringLost>(),
    /** Device-seconds of serving: Σ `activeS` (or `intervalS` of reports with requests, from agents without it). 0 on rows written before it existed. */
    activeSeconds: real('active_seconds').notNull().default(0),
    updatedAt: text('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key, t.bucketStart] }), index('telemetry_rollups_bucket').on(t.bucketStart)],
);

/** Each device's latest resources (from its newest telemetry report). */
export const telemetryLast = sqliteTable('telemetry_last', {
  deviceId: text('device_id').primaryKey(),
  at: text('at').notNull(),
  seq: integer('seq').notNull(),
  cpu: real('cpu').notNull(),
  rssBytes: integer('rss_bytes').notNull(),
  diskFreeBytes: integer('disk_free_bytes').notNull(),
  uptimeS: real('uptime_s').notNull(),
  queueDepth: integer('queue_depth').notNull(),
  activeBundle: text('active_bundle', { mode: 'json' }).$type<{ id: string; counter: number } | null>(),
  /** The outbox backlog (messages, bytes) at `at`; null from agents that do not send it. */
  outboxPending: integer('outbox_pending'),
  outboxPendingBytes: integer('outbox_pending_bytes'),
});

/** Drift evaluations (scheduled or on demand) per cohort and model version. */
export const driftEvaluations = sqliteTable(
  'drift_evaluations',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: text('at').notNull(),
    cohort: text('cohort').notNull(),
    modelVersionId: integer('model_version_id').notNull(),
    windowStart: text('window_start').notNull(),
    windowEnd: text('window_end').notNull(),
    rows: integer('rows').notNull(),
    verdict: text('verdict').notNull(),
    driftedFeatures: text('drifted_features', { mode: 'json' }).$type<string[]>().notNull(),
    report: text('report', { mode: 'json' }).notNull(),
  },
  (t) => [index('drift_evaluations_pair').on(t.cohort, t.modelVersionId, t.at), index('drift_evaluations_at').on(t.at)],
);

/** Alerts: at most one open drift alert per (cohort, model version); recovery closes it. */
export const alerts = sqliteTable(
  'alerts',
  {
    id: text('id').primaryKey(),
    kind: text('kind', { enum: ['drift'] }).notNull(),
    modelVersionId: integer('model_version_id')
      .notNull()
      .references(() => modelVersions.id, { onDelete: 'cascade' }),
    cohort: text('cohort').notNull(),
    /** The drifted features and outputs with method, score and threshold. */
    features: text('features', { mode: 'json' }).$type<Array<{ feature: string; kind: 'input' | 'output'; method: string; score: number | null; threshold: number }>>().notNull(),
    /** The most drifted one (lowest p-value or highest distance relative to its threshold). */
    feature: text('feature').notNull(),
    score: real('score'),
    threshold: real('threshold').notNull(),
    windowStart: text('window_start').notNull(),
    windowEnd: text('window_end').notNull(),
    status: text('status', { enum: ['open', 'closed'] }).notNull(),
    openedAt: text('opened_at').notNull(),
    updatedAt: text('updated_at').notNull(),
    closedAt: text('closed_at'),
  },
  (t) => [
    // A second replica (or a concurrent on-demand run) cannot open a duplicate.
    uniqueIndex('alerts_one_open').on(t.kind, t.cohort, t.modelVersionId).where(sql`status = 'open'`),
    index('alerts_status').on(t.status, t.openedAt),
  ],
);

/**
 * The webhook outbox: one row per alert transition (written in the alert's own transaction) or per event and subscription (webhooks/webhook-fanout.ts), sent
 * by `WebhookSender` (webhooks/webhook-sender.ts; claimed with a lease so two replicas never send a row at the same time).
 */
export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    id: text('id').primaryKey(),
    /** The event name, e.g. `alert.opened`. */
    event: text('event').notNull(),
    /** The JSON body as sent (signed byte for byte). */
    payload: text('payload').notNull(),
    status: text('status', { enum: ['pending', 'delivered', 'failed'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: text('next_attempt_at').notNull(),
    /** Set while a replica is sending the row; another may take it over after this time. */
    claimedUntil: text('claimed_until'),
    lastError: text('last_error'),
    createdAt: createdAt(),
    deliveredAt: text('delivered_at'),
    /** The webhook subscription it goes to; null: the alert webhook configured by FLOTILLA_ALERT_WEBHOOK_URL. */
    subscriptionId: text('subscription_id'),
  },
  (t) => [index('webhook_deliveries_due').on(t.status, t.nextAttemptAt), index('webhook_deliveries_created').on(t.createdAt), index('webhook_deliveries_subscription').on(t.subscriptionId, t.createdAt)],
);

/** Logged predictions (from devices or external systems), for ground-truth metrics once labels arrive. */
export const predictions = sqliteTable(
  'predictions',
  {
    predictionId: text('prediction_id').primaryKey(),
    deviceId: text('device_id'),
    modelVersionId: integer('model_version_id')
      .notNull()
      .references(() => modelVersions.id, { onDelete: 'cascade' }),
    predicted: text('predicted').notNull(),
    at: text('at').notNull(),
    receivedAt: text('received_at').notNull(),
  },
  (t) => [index('predictions_version_at').on(t.modelVersionId, t.at), index('predictions_device').on(t.deviceId)],
);

/** Ground truth by prediction id; kept apart so a label may arrive before its prediction. */
export const predictionLabels = sqliteTable('prediction_labels', {
  predictionId: text('prediction_id').primaryKey(),
  label: text('label').notNull(),
  labeledAt: text('labeled_at').notNull(),
});

/** A named dataset; its content lives in versions. */
export const datasets = sqliteTable('datasets', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  description: text('description'),
  createdAt: createdAt(),
});

/**
 * One immutable, content-addressed dataset version. `artifactSha256` is the stored content (a CSV or
 * JSONL file, or a JSON manifest naming image files by sha256 with their labels); pushing identical
 * content again answers the existing version.
 */
export const datasetVersions = sqliteTable(
  'dataset_versions',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    datasetId: integer('dataset_id').notNull().references(() => datasets.id),
    version: integer('version').notNull(),
    kind: text('kind', { enum: ['tabular', 'images', 'tensors'] }).notNull(),
    format: text('format').notNull(),
    artifactSha256: text('artifact_sha256').notNull().references(() => artifacts.sha256),
    size: integer('size').notNull(),
    rows: integer('rows').notNull(),
    /** Columns with their type and role (feature, label, group, id). */
    columns: text('columns', { mode: 'json' }).$type<Array<Record<string, unknown>>>().notNull(),
    /** How it was made: an upload, or a job's snapshot (sources, counts). */
    source: text('source', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
    createdBy: text('created_by'),
  },
  (t) => [uniqueIndex('dataset_versions_dataset_version').on(t.datasetId, t.version), index('dataset_versions_content').on(t.datasetId, t.artifactSha256)],
);

/** Samples captured on devices (opt-in, rate-limited): inputs plus the model's outputs, for retraining. */
export const capturedSamples = sqliteTable(
  'captured_samples',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id').notNull(),
    modelVersionId: integer('model_version_id')
      .notNull()
      .references(() => modelVersions.id, { onDelete: 'cascade' }),
    /** The agent's id for the sample (dedupes a batch resent after a lost answer). */
    sampleId: text('sample_id').notNull(),
    predictionId: text('prediction_id'),
    at: text('at').notNull(),
    inputs: text('inputs', { mode: 'json' }).notNull(),
    outputs: text('outputs', { mode: 'json' }),
    receivedAt: createdAt(),
  },
  (t) => [uniqueIndex('captured_samples_device_sample').on(t.deviceId, t.sampleId), index('captured_samples_version_at').on(t.modelVersionId, t.at)],
);

/** A model's retraining policy: schedule, drift trigger, trainer, what to do with the result. */
export const retrainPolicies = sqliteTable('retrain_policies', {
  modelId: integer('model_id')
    .primaryKey()
    .references(() => models.id),
  enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
  /** node-cron expression, or null for no schedule. */
  cron: text('cron'),
  /** Start a job when a drift alert on a cohort of this model stays open this long (seconds); null = off. */
  driftOpenForS: integer('drift_open_for_s'),
  trainer: text('trainer', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  /** Dataset the job trains on (name), plus whether captured samples and labels are added. */
  data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  /** Optimization recipe and rollout (none | canary | shadow) after a successful job. */
  after: text('after', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  timeoutS: integer('timeout_s').notNull().default(3600),
  maxAttempts: integer('max_attempts').notNull().default(2),
  updatedAt: createdAt('updated_at'),
  updatedBy: text('updated_by'),
});

/** Training jobs. State transitions are conditional updates, so two replicas never run one job twice. */
export const jobs = sqliteTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    kind: text('kind').notNull().default('retrain'),
    modelId: integer('model_id')
      .notNull()
      .references(() => models.id),
    status: text('status', { enum: ['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'] }).notNull(),
    /** What started it: `{ kind: 'cron' | 'drift' | 'manual', alertId?, cohort?, by? }`. */
    trigger: text('trigger', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    trainer: text('trainer', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    params: text('params', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    parentVersionId: integer('parent_version_id'),
    datasetVersionId: integer('dataset_version_id'),
    resultVersionId: integer('result_version_id'),
    attempt: integer('attempt').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull().default(2),
    timeoutS: integer('timeout_s').notNull().default(3600),
    /** Replica running it and its last heartbeat; a stale heartbeat lets another replica take over. */
    runner: text('runner'),
    heartbeatAt: text('heartbeat_at'),
    /** sha256 of the one-time token a webhook pipeline uploads its model with. */
    uploadTokenHash: text('upload_token_hash'),
    metrics: text('metrics', { mode: 'json' }).$type<Record<string, unknown> | null>(),
    error: text('error'),
    createdAt: createdAt(),
    startedAt: text('started_at'),
    finishedAt: text('finished_at'),
    cancelRequested: integer('cancel_requested', { mode: 'boolean' }).notNull().default(false),
  },
  (t) => [index('jobs_status').on(t.status, t.createdAt), index('jobs_model').on(t.modelId, t.createdAt)],
);

/** Log lines of a job (trainer stdout/stderr and the runner's own steps), bounded per job by the runner. */
export const jobLogs = sqliteTable(
  'job_logs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    jobId: text('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    at: createdAt(),
    stream: text('stream', { enum: ['stdout', 'stderr', 'runner'] }).notNull(),
    line: text('line').notNull(),
  },
  (t) => [index('job_logs_job').on(t.jobId, t.id)],
);

/** Named leases: one replica holds e.g. `scheduler` until `expiresAt`, renewing it while alive. */
export const leases = sqliteTable('leases', {
  name: text('name').primaryKey(),
  holder: text('holder').notNull(),
  expiresAt: text('expires_at').notNull(),
});

/**
 * A staged rollout of one bundle on one cohort (canary first, then the rest). Device order within the
 * cohort is a stable hash, so a stage's devices do not change between runs; state survives restarts.
 */
export const rollouts = sqliteTable(
  'rollouts',
  {
    id: text('id').primaryKey(),
    bundleId: text('bundle_id')
      .notNull()
      .references(() => bundles.id),
    cohort: text('cohort').notNull(),
    /** Stages as fractions of the cohort, e.g. [0.1, 1]. */
    stages: text('stages', { mode: 'json' }).$type<number[]>().notNull(),
    stage: integer('stage').notNull().default(0),
    status: text('status', { enum: ['running', 'succeeded', 'paused', 'aborted'] }).notNull(),
    /** Seconds a stage must stay healthy before the next one starts. */
    bakeS: integer('bake_s').notNull(),
    /** Gates (max failed updates, max error rate…) and the last verdict. */
    gates: text('gates', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    lastCheck: text('last_check', { mode: 'json' }).$type<Record<string, unknown> | null>(),
    /** The bundle the cohort ran before, for rolling a failed stage back. */
    previousBundleId: text('previous_bundle_id'),
    /** The bundle the devices are given when the cohort prefers a variant (the variant child's bundle); null: bundleId itself. */
    assignedBundleId: text('assigned_bundle_id').references(() => bundles.id),
    jobId: text('job_id'),
    stageStartedAt: text('stage_started_at').notNull(),
    createdAt: createdAt(),
    createdBy: text('created_by'),
    updatedAt: text('updated_at'),
    /** Shadow stage settings (share of requests, duration, window); null: no shadow stage. */
    shadow: text('shadow', { mode: 'json' }).$type<{ share: number; durationS: number; windowS: number } | null>(),
    /** `shadow` while the candidate is evaluated beside the serving bundle, then `stages`. */
    phase: text('phase', { enum: ['shadow', 'stages'] }).notNull().default('stages'),
    /** Devices that ended without the bundle: timed out (never reported within the stage limit) or superseded by a newer rollout. */
    outcomes: text('outcomes', { mode: 'json' }).$type<Record<string, { state: 'timed_out' | 'superseded'; reason: string; at: string }>>(),
  },
  (t) => [index('rollouts_status').on(t.status), index('rollouts_cohort').on(t.cohort, t.createdAt)],
);

/**
 * The event log behind `GET /api/v1/events`: one row per state change (device presence and update
 * state, deployments, rollouts, alerts, jobs), written in the transaction that made the change. The
 * id is the stream position; SQLite has one writer at a time, so ids become visible in id order and a
 * reader that remembers the last id it saw never misses one. Rows expire after the events retention.
 */
export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: createdAt('at'),
    kind: text('kind', { enum: ['device', 'deployment', 'rollout', 'alert', 'job', 'model'] }).notNull(),
    type: text('type').notNull(),
    /** The id of what changed (device, deployment, rollout, alert or job). */
    subject: text('subject').notNull(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index('events_kind').on(t.kind, t.id), index('events_at').on(t.at)],
);

/**
 * What served when: one row per span of time a device ran one bundle (its reported active bundle), opened
 * and closed by the device-state writer when the reported active bundle changes. `endedAt` null: serving
 * now (at most one such row per device). Kept apart from `events` (which expire) so history outlives them.
 */
export const servingHistory = sqliteTable(
  'serving_history',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id').notNull(),
    bundleId: text('bundle_id').notNull(),
    model: text('model').notNull(),
    version: integer('version').notNull(),
    /** The manifest counter the device activated. */
    counter: integer('counter').notNull(),
    /** The cohort of the deployment or rollout that gave the bundle (null: a device deployment). */
    cohort: text('cohort'),
    /** `dep_…` (deployment) or `rol_…` (rollout) that gave the bundle, when known. */
    deploymentId: text('deployment_id'),
    /** `deployment`, `rollback` (a signed rollback of the device), `rollout`, `agent-rollback` (probation failed, the agent went back), `unknown`. */
    via: text('via').notNull(),
    /** Who started that deployment or rollout. */
    startedBy: text('started_by'),
    /** Server time of the first `reported` naming this bundle as active, and of the one that named another. */
    startedAt: text('started_at').notNull(),
    endedAt: text('ended_at'),
    /** The device's own activation time (its clock). */
    activatedAt: text('activated_at'),
    /** The latest failed attempt to replace this bundle while it served (the failure stays here once the device's lastError is cleared). */
    lastFailure: text('last_failure', { mode: 'json' }).$type<{ code: string; message: string; at: string; bundleId?: string } | null>(),
  },
  (t) => [
    uniqueIndex('serving_history_open').on(t.deviceId).where(sql`ended_at IS NULL`),
    index('serving_history_device').on(t.deviceId, t.startedAt),
    index('serving_history_model').on(t.model, t.version),
    index('serving_history_cohort').on(t.cohort, t.startedAt),
  ],
);

/** Webhook subscriptions: event types (or `kind.*`) POSTed, signed, to a URL through the `webhook_deliveries` outbox. */
export const webhookSubscriptions = sqliteTable('webhook_subscriptions', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  /** The HMAC secret, encrypted at rest with the key-encryption key (keys/key-cipher.ts): it must be readable to sign. */
  secretCipher: text('secret_cipher').notNull(),
  /** Event types or `kind.*` patterns, e.g. `["rollout.*", "alert.opened"]`. */
  events: text('events', { mode: 'json' }).$type<string[]>().notNull(),
  description: text('description'),
  /** The newest event id when it was created: only later events are delivered to it. */
  fromEventId: integer('from_event_id').notNull(),
  createdAt: createdAt(),
  createdBy: text('created_by'),
});

/** Named positions in the event log (e.g. how far webhook fan-out got), advanced by conditional update. */
export const eventCursors = sqliteTable('event_cursors', {
  name: text('name').primaryKey(),
  position: integer('position').notNull(),
  updatedAt: text('updated_at').notNull(),
});
