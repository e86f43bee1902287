// The CLI's commands as data (walked from commander): shell completion is generated from it, and the
// OpenAPI-coverage test reads it (`flotilla completion commands --json`) to check every operation has one.
import type { Command } from 'commander';

export interface CommandInfo {
  /** e.g. ['drift', 'evaluate'] */
  path: string[];
  description: string;
  /** Long flags, e.g. ['--cohort', '--json']. */
  options: string[];
  subcommands: string[];
}

export function commandTree(root: Command): CommandInfo[] {
  const out: CommandInfo[] = [];
  const globals = root.options.map((o) => o.long).filter((x): x is string => Boolean(x));
  const walk = (cmd: Command, path: string[]) => {
    const visible = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    out.push({
      path,
      description: cmd.description(),
      options: [...new Set([...cmd.options.filter((o) => !o.hidden).map((o) => o.long).filter((x): x is string => Boolean(x)), ...globals, '--help'])],
      subcommands: visible.map((c) => c.name()),
    });
    for (const c of visible) walk(c, [...path, c.name()]);
  };
  walk(root, []);
  return out;
}
