// The database schema: the source of truth; migrations are generated from it with `npm run db:generate`.
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

const createdAt = () => text('created_at').notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`);

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
    /** scrypt hash of the MQTT/HTTP device secret. */
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
});

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
  privateKeyPem: text('private_key_pem').notNull(),
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
  },
  (t) => [index('device_desired_bundle').on(t.bundleId)],
);
