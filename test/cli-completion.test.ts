// `flotilla completion bash|zsh|fish`: scripts generated from the command tree. The bash one is run in
// a real bash (completing subcommands and flags at several depths); zsh and fish are not installed in
// CI, so for them the test checks that every command and flag of the tree is in the script.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { runCli } from './helpers/cli.ts';

test('bash completion completes commands, subcommands and flags', async () => {
  const r = await runCli(['completion', 'bash'], {});
  assert.equal(r.code, 0, r.stderr);
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-completion-'));
  try {
    const file = path.join(dir, 'flotilla.bash');
    await writeFile(file, r.stdout);
    const complete = async (...words: string[]) => {
      const script = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _flotilla; echo "\${COMPREPLY[@]}"`;
      return (await promisify(execFile)('bash', ['-c', script])).stdout.trim().split(' ');
    };
    assert.ok((await complete('flotilla', 'sta')).includes('status'));
    assert.deepEqual(await complete('flotilla', '--json', 'devices', 'l'), ['ls', 'label']);
    assert.ok((await complete('flotilla', 'drift', '')).includes('evaluate'));
    const flags = await complete('flotilla', 'devices', 'ls', '--');
    for (const f of ['--selector', '--status', '--watch', '--json']) assert.ok(flags.includes(f), `${f} in ${flags}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('zsh and fish scripts name every command and flag of the tree; an unknown shell is refused with the choices', async () => {
  const tree = JSON.parse((await runCli(['completion', 'commands', '--json'], {})).stdout) as Array<{ path: string[]; options: string[]; subcommands: string[] }>;
  const zsh = (await runCli(['completion', 'zsh'], {})).stdout;
  const fish = (await runCli(['completion', 'fish'], {})).stdout;
  assert.match(zsh, /^#compdef flotilla/);
  for (const c of tree) {
    const key = c.path.join(' ');
    assert.ok(zsh.includes(`'${key}')`), `zsh: ${key}`);
    for (const s of c.subcommands) assert.ok(fish.includes(`= '${key}'" -a '${s}'`), `fish: ${key} ${s}`);
    for (const o of c.options) assert.ok(fish.includes(`= '${key}'" -l '${o.slice(2)}'`), `fish: ${key} ${o}`);
  }
  const bad = await runCli(['completion', 'tcsh'], {});
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown shell "tcsh": use bash, zsh or fish/);
});
