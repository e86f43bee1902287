// How a failed command ends: one line on stderr for people, or with --json one object
// `{"error":{"code","message","details"}}` (the API's error shape) so scripts never parse a sentence.
// Exit codes (README, "The CLI"): 1 the server refused or the operation failed, 2 bad usage or a
// local problem (a flag, a file, the configuration).
import { CommanderError } from 'commander';
import { CliError } from './output.ts';

export interface ReportedError {
  code: string;
  message: string;
  details: Record<string, unknown>;
  exitCode: number;
}

export function describeError(err: unknown): ReportedError {
  if (err instanceof CommanderError) {
    // Commander's own refusals: unknown option, missing argument, bad choice.
    return { code: err.code.replace(/^commander\./, '').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase(), message: err.message.replace(/^error: /, '') + ' (see --help)', details: {}, exitCode: 2 };
  }
  if (err instanceof CliError) return { code: err.code, message: err.message, details: err.details, exitCode: err.exitCode };
  return { code: 'internal', message: (err as Error).message, details: {}, exitCode: 1 };
}

/** Writes the error to stderr and returns the exit code. */
export function reportError(err: unknown, json: boolean): number {
  const e = describeError(err);
  if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } }) + '\n');
  else if (!(err instanceof CommanderError)) process.stderr.write(`flotilla: ${e.message}\n`); // commander printed its own
  return e.exitCode;
}
