// The CLI's connection to the control plane: the typed Hono client plus error handling that turns
// any failure into one readable line.
import { hc } from 'hono/client';
import type { AppType } from '../app.ts';
import type { CliConfig } from './env.ts';
import { CliError } from './output.ts';

/** The server's URL, for messages (set by apiClient). */
let serverUrl = '';

export function apiClient(config: CliConfig) {
  if (!config.url) throw new CliError('no server configured: set FLOTILLA_URL or run `flotilla login --url <url> --token <token>`', 2, 'not_configured');
  if (!config.token) throw new CliError('no token configured: set FLOTILLA_TOKEN or run `flotilla login --url <url> --token <token>`', 2, 'not_configured');
  serverUrl = config.url;
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
    throw new CliError(`cannot reach the server at ${serverUrl} (${causeOf(err)}): is it running? check FLOTILLA_URL or \`flotilla login --url <url>\``, 1, 'unreachable', { cause: causeOf(err), url: serverUrl });
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
    const hint = res.status === 404 && e ? notFoundHint(e.message) : undefined;
    throw new CliError(
      e ? `${e.message}${refs} [${e.code}]${hint ? `; ${hint}` : hintFor(res.status)}` : `server answered ${res.status}; is FLOTILLA_URL the control plane?`,
      1,
      e?.code ?? `http_${res.status}`,
      { status: res.status, ...(e?.details ?? {}), ...(hint ? { hint } : {}) },
    );
  }
  return body as T;
}

/** The errno behind a failed fetch (undici nests it under `fetch failed`: ECONNREFUSED, an AggregateError of them, or e.g. `bad port`). */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } }).cause;
  return cause?.code ?? cause?.errors?.find((e) => e.code)?.code ?? cause?.message ?? (err as Error).message;
}

// `<what> "<id>" not found` → the command that lists what exists.
const LISTS: Array<[RegExp, string]> = [
  [/^model version "([^"@]+)@/, 'list its versions with `flotilla models versions $1`'],
  [/^model "/, 'list models with `flotilla models ls`'],
  [/^device "/, 'list devices with `flotilla devices ls`'],
  [/^bundle "/, 'list bundles with `flotilla bundles ls`'],
  [/^cohort "/, 'list cohorts with `flotilla cohorts ls`'],
  [/^rollout "/, 'list rollouts with `flotilla rollouts ls`'],
  [/^job "/, 'list jobs with `flotilla jobs ls`'],
  [/^deployment "/, 'list deployments with `flotilla deployments ls`'],
  [/^dataset "/, 'list datasets with `flotilla datasets ls`'],
  [/^webhook "/, 'list webhooks with `flotilla webhooks ls`'],
  [/^(active )?token /, 'list tokens with `flotilla tokens ls`'],
  [/^enroll(ment)? token /, 'list enroll tokens with `flotilla enroll-tokens ls`'],
];

function notFoundHint(message: string): string | undefined {
  for (const [re, hint] of LISTS) {
    const m = re.exec(message);
    if (m) return hint.replace('$1', m[1] ?? '');
  }
  return undefined;
}

/** What to do next for the refusals whose fix is not in the server's message. */
function hintFor(status: number): string {
  if (status === 401) return '; check FLOTILLA_TOKEN or run `flotilla login --url <url> --token <token>`';
  if (status === 403) return '; ask an admin for a token with a role that allows it (`flotilla tokens create --role ...`)';
  return '';
}
