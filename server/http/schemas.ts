// Schemas shared by several route modules (request validation + OpenAPI description).
import { z } from '@hono/zod-openapi';
import { MAX_LABELS } from './bounds.ts';

export const ErrorResponse = z
  .object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })
  .openapi('Error');

export const errorResponses = {
  400: { content: { 'application/json': { schema: ErrorResponse } }, description: 'Invalid request' },
  401: { content: { 'application/json': { schema: ErrorResponse } }, description: 'Missing, unknown or expired token' },
  403: { content: { 'application/json': { schema: ErrorResponse } }, description: 'Role does not allow this' },
  404: { content: { 'application/json': { schema: ErrorResponse } }, description: 'Not found' },
  409: { content: { 'application/json': { schema: ErrorResponse } }, description: 'Conflict' },
} as const;

/** Every list endpoint: `limit` (1–1000, default 100) and `offset`; a response shorter than `limit` is the last page. */
export const Pagination = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
});

/** One page of a list a service returned whole (lists filtered in memory, e.g. by a label selector). */
export function page<T>(rows: T[], p: { limit: number; offset: number }): T[] {
  return rows.slice(p.offset, p.offset + p.limit);
}

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { content: { 'application/json': { schema } }, description };
}

/** Labels: key=value pairs, Kubernetes-style keys and values. */
export const LabelKey = z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,62}[a-zA-Z0-9])?$/, 'label keys: letters, digits, . _ - /');
export const LabelValue = z.string().regex(/^([a-zA-Z0-9]([a-zA-Z0-9._-]{0,62}[a-zA-Z0-9])?)?$/, 'label values: letters, digits, . _ -');
export const Labels = z
  .record(LabelKey, LabelValue)
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`)
  .openapi({ description: `at most ${MAX_LABELS} labels; keys and values up to 64 characters` });
