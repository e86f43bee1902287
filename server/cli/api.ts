// The CLI's connection to the control plane: the typed Hono client plus error handling that turns
// any failure into one readable line.
import { hc } from 'hono/client';
import type { AppType } from '../app.ts';
import type { CliConfig } from './env.ts';
import { CliError } from './output.ts';

export function apiClient(config: CliConfig) {
  if (!config.url) throw new CliError('no server configured: set FLOTILLA_URL or run `flotilla login --url <url> --token <token>`', 2, 'not_configured');
  if (!config.token) throw new CliError('no token configured: set FLOTILLA_TOKEN or run `flotilla login --url <url> --token <token>`', 2, 'not_configured');
  return hc<AppType>(config.url, { headers: { authorization: `Bearer ${config.token}` } });
}

export type Api = ReturnType<typeof apiClient>;

/** The body type of a typed-client response union's 2xx members. */
type SuccessBody<R> = R extends { status: infer S; json(): Promise<infer B> } ? (S extends 200 | 201 | 202 ? B : never) : never;

/** Awaits a typed-client call; non-2xx answers become a CliError with the server's message. */
export async function call<R extends Response>(request: Promise<R>): Promise<SuccessBody<R>> {
  type T = SuccessBody<R>;
  let res;
  try {
    res = await request;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new CliError(`cannot reach the server (${cause}); check FLOTILLA_URL`, 1, 'unreachable', { cause });
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    throw new CliError(`server answered ${res.status} with a non-JSON body; is FLOTILLA_URL the control plane?`, 1, 'bad_response', { status: res.status });
  }
  if (!res.ok) {
    const e = (body as { error?: { code: string; message: string; details?: { references?: string[] } } })?.error;
    const refs = e?.details?.references ? ` (${e.details.references.join('; ')})` : '';
    throw new CliError(e ? `${e.message}${refs} [${e.code}]${hintFor(res.status)}` : `server answered ${res.status}`, 1, e?.code ?? `http_${res.status}`, { status: res.status, ...(e?.details ?? {}) });
  }
  return body as T;
}

/** What to do next for the refusals whose fix is not in the server's message. */
function hintFor(status: number): string {
  if (status === 401) return '; check FLOTILLA_TOKEN or run `flotilla login --url <url> --token <token>`';
  if (status === 403) return '; ask an admin for a token with a role that allows it (`flotilla tokens create --role ...`)';
  return '';
}
