// CLI output: aligned tables for people, JSON for scripts.
import { InvalidArgumentError } from 'commander';
import { ago, size } from './human.ts';

/**
 * A refusal: the message says what to fix. Exit code 1 = the server refused or the operation failed,
 * 2 = bad usage or a local problem. `code` and `details` are what `--json` prints on stderr (the
 * server's own code and details when it refused).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly code = exitCode === 2 ? 'invalid_usage' : 'failed',
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface Output {
  json: boolean;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'object') {
    if (Array.isArray(v)) return v.map(cell).join(',') || '-';
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length ? entries.map(([k, x]) => `${k}=${cell(x)}`).join(',') : '-';
  }
  return String(v);
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d/;
const isTimeColumn = (c: string) => /At$|^(at|lastSeen|created|started|finished)$/.test(c);
const isSizeColumn = (c: string) => c === 'size' || /Bytes$/.test(c);

/** A table cell for people: times relative ("3 min ago"), sizes in KB/MB/GB; --json keeps the raw values. */
function humanCell(column: string, v: unknown): string {
  if (typeof v === 'string' && isTimeColumn(column) && ISO_TIME.test(v)) return ago(v);
  if (typeof v === 'number' && isSizeColumn(column)) return size(v);
  return cell(v);
}

export function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  if (!rows.length) return '(none)';
  const cells = rows.map((r) => columns.map((c) => humanCell(c, r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

export function keyValues(obj: Record<string, unknown>): string {
  const width = Math.max(...Object.keys(obj).map((k) => k.length));
  return Object.entries(obj)
    .map(([k, v]) => `${k.padEnd(width)}  ${typeof v === 'string' && isTimeColumn(k) && ISO_TIME.test(v) ? `${v} (${ago(v)})` : humanCell(k, v)}`)
    .join('\n');
}

/** Prints `data` as JSON with --json, else the human rendering. */
export function emit(out: Output, data: unknown, human: () => string): void {
  process.stdout.write((out.json ? JSON.stringify(data, null, 2) : human()) + '\n');
}

/** A commander argument parser for counts (`--limit`): refused on the command line, not by the server's query check. */
export function wholeNumber(text: string): string {
  if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError('expected a whole number, e.g. 50');
  return text.trim();
}

/** `24h`, `30m`, `7d`, `90s` or plain seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new CliError(`invalid duration "${text}": use e.g. 90s, 30m, 24h, 7d`, 2);
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * mult;
}

/** `a=1,b=2` or repeated `a=1` arguments → record. */
export function parsePairs(items: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items.flatMap((s) => s.split(',')).filter(Boolean)) {
    const i = item.indexOf('=');
    if (i <= 0) throw new CliError(`invalid ${what} "${item}": expected key=value`, 2);
    out[item.slice(0, i).trim()] = item.slice(i + 1).trim();
  }
  return out;
}
