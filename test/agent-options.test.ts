// `flotilla-agent --help`, the agent's configuration schema and agent/README.md's option table come
// from one list (agent/options.ts): this test fails when any of them drifts from it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { AgentConfigInput } from '../agent/config.ts';
import { AGENT_OPTIONS, optionsMarkdown } from '../agent/options.ts';

const ROOT = path.join(import.meta.dirname, '..');

test('every configuration key has exactly one option definition', () => {
  assert.deepEqual(AGENT_OPTIONS.map((o) => o.key).sort(), Object.keys(AgentConfigInput.shape).sort());
  assert.equal(new Set(AGENT_OPTIONS.map((o) => o.flag)).size, AGENT_OPTIONS.length);
});

test('the documented defaults are the schema defaults', () => {
  const defaults = AgentConfigInput.parse({}) as Record<string, unknown>;
  for (const o of AGENT_OPTIONS) {
    if (/^\d+(\.\d+)?$/.test(o.default)) assert.equal(defaults[o.key], Number(o.default), o.flag);
    else if (o.default === '' || /\s|^[A-Z]+$|^hostname$/.test(o.default)) assert.equal(defaults[o.key], undefined, `${o.flag} has no fixed default`);
    else assert.equal(defaults[o.key], o.default, o.flag);
  }
});

test('flotilla-agent --help shows every option with its variable and default', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin', 'flotilla-agent.js'), '--help'], { timeout: 30_000, env: { PATH: process.env.PATH ?? '' } });
  const help = stdout.replace(/\s+/g, ' '); // commander wraps long descriptions
  for (const o of AGENT_OPTIONS) {
    assert.ok(help.includes(`${o.flag} <value>`), `--help lacks ${o.flag}`);
    assert.ok(help.includes(`env ${o.env}`), `--help lacks ${o.env}`);
    if (o.default) assert.ok(help.includes(`default ${o.default}`), `--help lacks the default of ${o.flag}`);
  }
  assert.ok(help.includes('--probation-ms <value>'), 'the flag the issue found missing');
});

test("agent/README.md's option table is the generated one (npm run docs:agent-options)", async () => {
  const readme = await readFile(path.join(ROOT, 'agent', 'README.md'), 'utf8');
  const m = /<!-- agent-options:start[^>]*-->\n([\s\S]*?)\n<!-- agent-options:end -->/.exec(readme);
  assert.ok(m, 'agent/README.md has the agent-options markers');
  assert.equal(m[1], optionsMarkdown(), 'run `npm run docs:agent-options` to regenerate the table');
});
