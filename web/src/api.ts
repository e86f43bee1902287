// The console's connection to the control plane: the same typed Hono client the CLI uses (a route
// change breaks this build), with the session's bearer token, and errors turned into readable messages.
import { hc } from 'hono/client';
import type { AppType } from '../../server/app.ts';
import { session } from './session.ts';

export const api = hc<AppType>(location.origin, {
  headers: (): Record<string, string> => {
    const t = session.token();
    return t ? { authorization: `Bearer ${t}` } : {};
  },
});
export type Api = typeof api;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  /** What to show a person: what happened and what to do about it. */
  get readable(): string {
    if (this.status === 403) return `Your role cannot do this. ${this.message}. Ask an admin for a token with a role that may.`;
    if (this.status === 401) return `Your session is no longer valid (${this.message}). Sign in again with a current token.`;
    if (this.status === 0) return `Cannot reach the control plane (${this.message}). Check that it is running and reload.`;
    return this.message;
  }
}

type SuccessBody<R> = R extends { status: infer S; json(): Promise<infer B> } ? (S extends 200 | 201 | 202 ? B : never) : never;

/** Awaits a typed-client call; a non-2xx answer throws ApiError with the server's code and message. */
export async function call<R extends Response>(request: Promise<R>): Promise<SuccessBody<R>> {
  let res: Response;
  try {
    res = await request;
  } catch (err) {
    throw new ApiError(0, 'network', (err as Error).message);
  }
  if (res.status === 204) return undefined as SuccessBody<R>;
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, 'bad_response', `the server answered ${res.status} with a non-JSON body`);
  }
  if (!res.ok) {
    const e = (body as { error?: { code: string; message: string; details?: unknown } } | undefined)?.error;
    const err = new ApiError(res.status, e?.code ?? 'http_error', e?.message ?? `the server answered ${res.status}`, e?.details);
    if (res.status === 401) session.expired(err.readable);
    throw err;
  }
  return body as SuccessBody<R>;
}

/** Any thrown value as one readable line. */
export function readable(err: unknown): string {
  return err instanceof ApiError ? err.readable : err instanceof Error ? err.message : String(err);
}

/**
 * GET for endpoints of the event-stream contract (EVENTS-CONTRACT.md) that this build's AppType may
 * not have yet; null when the server answers 404 (not there), so the page can fall back.
 */
export async function getOptional<T>(path: string): Promise<T | null> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${session.token() ?? ''}` } }).catch((err: Error) => {
    throw new ApiError(0, 'network', err.message);
  });
  if (res.status === 404) {
    const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
    if (body?.error?.code === 'not_found' || !body) return null;
  }
  return call(Promise.resolve(res) as Promise<Response & { status: 200; json(): Promise<T> }>) as Promise<T>;
}
