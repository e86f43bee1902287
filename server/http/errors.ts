// Maps every error to { error: { code, message, details } }: typed service errors keep their status,
// malformed JSON and validation failures are 400, anything unexpected is a 500 that hides internals.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ServiceError } from '../errors.ts';

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, ...(details === undefined ? {} : { details }) } };
}

export function onError(logger: Logger) {
  return (err: Error, c: Context) => {
    if (err instanceof ServiceError) return c.json(errorBody(err.code, err.message, err.details), err.status);
    if (err instanceof HTTPException) {
      const malformed = /malformed json/i.test(err.message);
      const code = malformed ? 'malformed_json' : err.status === 401 ? 'unauthorized' : 'invalid_request';
      const message = malformed ? 'request body is not valid JSON' : err.message || 'bad request';
      return c.json(errorBody(code, message), err.status);
    }
    logger.error({ err, path: c.req.path }, 'unhandled error');
    return c.json(errorBody('internal', 'internal server error'), 500);
  };
}

/** zod-openapi validation hook: a failed request schema becomes a 400 naming each bad field. */
export function validationHook(result: { success: boolean; error?: z.ZodError; target?: string }, c: Context) {
  if (!result.success && result.error) {
    const issues = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    const first = issues[0];
    return c.json(
      errorBody('invalid_request', `invalid ${result.target ?? 'request'}: ${first.path ? first.path + ': ' : ''}${first.message}`, { issues }),
      400,
    );
  }
}
