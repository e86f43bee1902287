// Cohorts: named label selectors; membership is computed from the devices' labels at read time.
import { eq, sql } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { cohorts, devices } from '../db/schema.ts';
import { listDevices, parseSelectorOrThrow } from '../devices/device-service.ts';
import { matches, parseSelector } from './selector.ts';
import { Conflict, Invalid, NotFound } from '../errors.ts';

export const COHORT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Variant names as the optimizer writes them: `int8`, `pruned`, `int8+pruned`. */
export const VARIANT_NAME = /^[a-z0-9][a-z0-9+._-]{0,31}$/;

export async function createCohort(db: Db, input: { name: string; selector: string; description?: string; actor: string }) {
  if (!COHORT_NAME.test(input.name)) throw Invalid(`invalid cohort name "${input.name}": lowercase letters, digits, '.', '_' or '-'`);
  parseSelectorOrThrow(input.selector);
  return db.transaction(async (tx) => {
    const existing = await tx.query.cohorts.findFirst({ where: eq(cohorts.name, input.name) });
    if (existing) throw Conflict(`cohort "${input.name}" already exists`);
    const [row] = await tx.insert(cohorts).values({ name: input.name, selector: input.selector, description: input.description ?? null }).returning();
    await recordAudit(tx, input.actor, 'cohort.create', input.name, { selector: input.selector });
    return row;
  });
}

/** `preferVariant`: the variant its devices get when a deployed version has one (null: none). */
export async function updateCohort(db: Db, name: string, input: { selector?: string; description?: string; preferVariant?: string | null }, actor: string) {
  if (Object.values(input).every((v) => v === undefined)) throw Invalid('nothing to change: give selector, description or preferVariant');
  if (input.selector !== undefined) parseSelectorOrThrow(input.selector);
  if (input.preferVariant && !VARIANT_NAME.test(input.preferVariant)) throw Invalid(`invalid variant "${input.preferVariant}": e.g. int8, pruned, int8+pruned`);
  return db.transaction(async (tx) => {
    await getCohort(tx, name);
    const [row] = await tx.update(cohorts).set(input).where(eq(cohorts.name, name)).returning();
    await recordAudit(tx, actor, 'cohort.update', name, input);
    return row;
  });
}

export async function deleteCohort(db: Db, name: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    await getCohort(tx, name);
    await tx.delete(cohorts).where(eq(cohorts.name, name));
    await recordAudit(tx, actor, 'cohort.delete', name);
  });
}

export async function getCohort(db: Tx, name: string) {
  const row = await db.query.cohorts.findFirst({ where: eq(cohorts.name, name) });
  if (!row) throw NotFound(`cohort "${name}"`);
  return row;
}

export async function listCohorts(db: Db) {
  return db.select().from(cohorts).orderBy(cohorts.name);
}

/**
 * The cohorts with how many approved devices each holds now (what the console's rollout picker shows), from
 * one read of the approved devices' labels as a single JSON document; a stored selector that no longer
 * parses counts 0.
 */
export async function withMemberCounts<C extends { selector: string }>(db: Tx, list: C[]): Promise<Array<C & { memberCount: number }>> {
  if (!list.length) return [];
  const [row] = await db.all<{ labels: string }>(sql`select json_group_array(json(${devices.labels})) as labels from ${devices} where ${devices.status} = 'approved'`);
  const labels = JSON.parse(row?.labels ?? '[]') as Array<Record<string, string>>;
  return list.map((c) => {
    let terms;
    try {
      terms = parseSelector(c.selector);
    } catch {
      return { ...c, memberCount: 0 };
    }
    let memberCount = 0;
    for (const l of labels) if (matches(terms, l)) memberCount++;
    return { ...c, memberCount };
  });
}

/** Current members: approved devices whose labels match the selector. */
export async function cohortMembers(db: Tx, name: string) {
  const cohort = await getCohort(db, name);
  return { cohort, members: await listDevices(db, { selector: cohort.selector, status: 'approved' }) };
}

/**
 * The ids of a cohort's approved members, in cohortMembers' order, reading only ids and labels: a
 * deployment to 10,000 devices need not parse every device's facts and last report.
 */
export async function cohortMemberIds(db: Tx, name: string): Promise<string[]> {
  const cohort = await getCohort(db, name);
  const terms = parseSelectorOrThrow(cohort.selector);
  const rows = await db.select({ id: devices.id, labels: devices.labels }).from(devices).where(eq(devices.status, 'approved')).orderBy(devices.enrolledAt);
  return rows.filter((d) => matches(terms, d.labels)).map((d) => d.id);
}
