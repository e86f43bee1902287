// Runs the real `flotilla` CLI (bin/flotilla.js) as a child process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'flotilla.js');

export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `flotilla --json <args>`, asserts it exited 0 (naming the command and its stderr) and returns the parsed output. */
export async function cliJson(env: Record<string, string>, ...args: string[]): Promise<any> {
  const r = await runCli(['--json', ...args], env);
  assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
