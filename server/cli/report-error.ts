// How a failed command ends: one line on stderr for people, or with --json one object
// `{"error":{"code","message","details"}}` (the API's error shape) so scripts never parse a sentence.
// Exit codes (README, "The CLI"): 1 the server refused or the operation failed, 2 bad usage or a
// local problem (a flag, a file, the configuration).
import { CommanderError, type Command } from 'commander';
import { CliError } from './output.ts';

export interface ReportedError {
  code: string;
  message: string;
  details: Record<string, unknown>;
  exitCode: number;
}

/** `command` is the command line's command (e.g. `models push`), for the pointer to its help. */
export function describeError(err: unknown, command = ''): ReportedError {
  if (err instanceof CommanderError) {
    // Commander's own refusals: unknown option, missing argument, bad choice. Its "(Did you mean x?)"
    // sits on a second line; folded into the one.
    const message = err.message.replace(/^error: /, '').replace(/\s*\n\s*\(Did you mean (.+)\?\)/, ' (did you mean $1?)').replace(/\s*\n\s*/g, ' ');
    return { code: err.code.replace(/^commander\./, '').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase(), message: `${message}: see \`flotilla ${command ? `${command} ` : ''}--help\``, details: {}, exitCode: 2 };
  }
  if (err instanceof CliError) return { code: err.code, message: err.message, details: err.details, exitCode: err.exitCode };
  return { code: 'internal', message: (err as Error).message, details: {}, exitCode: 1 };
}

/** Writes the error to stderr and returns the exit code. */
export function reportError(err: unknown, json: boolean, command = ''): number {
  const e = describeError(err, command);
  if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } }) + '\n');
  else process.stderr.write(`flotilla: ${e.message}\n`);
  return e.exitCode;
}

/** The command an argument list names (`models push` for `--json models push x --name y`): the leading words that are subcommands. */
export function commandNamed(root: Command, args: string[]): string {
  const words: string[] = [];
  let cmd: Command | undefined = root;
  for (const a of args.filter((x) => !x.startsWith('-'))) {
    cmd = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!cmd) break;
    words.push(cmd.name());
  }
  return words.join(' ');
}
