// Every REST operation a user needs has a `flotilla` command: walks the control plane's OpenAPI
// document and the CLI's command tree (as the CLI itself reports it) against test/helpers/cli-operations.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { NO_COMMAND, OPERATION_COMMANDS } from './helpers/cli-operations.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

describe('OpenAPI coverage of the CLI', () => {
  let cp: TestPlane;
  let operations: string[];
  let commands: Set<string>;
  before(async () => {
    cp = await startControlPlane();
    const doc = await cp.api('GET', '/api/v1/openapi.json', { token: null });
    assert.equal(doc.status, 200);
    operations = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([route, item]) =>
      Object.keys(item)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => `${m.toUpperCase()} ${route}`),
    );
    const tree = await runCli(['completion', 'commands', '--json'], {});
    assert.equal(tree.code, 0, tree.stderr);
    commands = new Set((JSON.parse(tree.stdout) as Array<{ path: string[] }>).map((c) => c.path.join(' ')));
  });
  after(() => cp.stop());

  test('every operation has a command or a reason in the allow-list', () => {
    assert.ok(operations.length > 50, `the document lists ${operations.length} operations`);
    const missing = operations.filter((op) => !(op in OPERATION_COMMANDS) && !(op in NO_COMMAND));
    assert.deepEqual(missing, [], 'operations without a CLI command: add one and list it in test/helpers/cli-operations.ts (or allow-list it with a reason)');
  });

  test('every command named exists in the CLI', () => {
    const absent = Object.entries(OPERATION_COMMANDS).filter(([, cmd]) => !commands.has(cmd));
    assert.deepEqual(absent, [], 'commands named in test/helpers/cli-operations.ts that `flotilla` does not have');
  });

  test('no entry names an operation the document no longer has', () => {
    const known = new Set(operations);
    const stale = [...Object.keys(OPERATION_COMMANDS), ...Object.keys(NO_COMMAND)].filter((op) => !known.has(op));
    assert.deepEqual(stale, []);
  });
});
