// The `command` trainer's contract (README, "Trainers"): FLOTILLA_OUTPUT and FLOTILLA_METRICS are file
// paths; a trainer that makes either a folder gets an error or a log line naming the variable and
// what was expected, not a bare EISDIR. Real child processes (node -e).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCommandTrainer } from './command-trainer.ts';
import type { TrainerContext } from './trainer.ts';

describe('command trainer contract', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-command-trainer-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function run(script: string) {
    const workDir = await mkdtemp(path.join(dir, `job${++n}-`));
    await writeFile(path.join(workDir, 'data.csv'), 'a,b\n1,2\n');
    const logs: string[] = [];
    const ctx: TrainerContext = {
      jobId: `job_${n}`,
      modelName: 'm',
      attempt: 1,
      workDir,
      datasetPath: path.join(workDir, 'data.csv'),
      datasetKind: 'tabular',
      parentModelPath: null,
      outputPath: path.join(workDir, 'model.onnx'),
      signal: new AbortController().signal,
      log: (_s, line) => logs.push(line),
    };
    const result = runCommandTrainer({ kind: 'command', argv: [process.execPath, '-e', script] }, ctx);
    return { result, logs, ctx };
  }

  test('a trainer that makes FLOTILLA_OUTPUT a folder: the error names the variable and says it is a file path', async () => {
    const { result } = await run(`require('node:fs').mkdirSync(process.env.FLOTILLA_OUTPUT); require('node:fs').writeFileSync(process.env.FLOTILLA_OUTPUT + '/model.onnx', 'x')`);
    await assert.rejects(result, /FLOTILLA_OUTPUT \(.*model\.onnx\) is the path of the ONNX file to write, but the trainer made it a folder/);
  });

  test('a trainer that writes nothing: the error names FLOTILLA_OUTPUT and its path', async () => {
    const { result } = await run(`0`);
    await assert.rejects(result, /wrote no model to FLOTILLA_OUTPUT \(.*model\.onnx\): write the ONNX bytes to that file path/);
  });

  test('the variables are what the README says: dataset a file, output and metrics file paths; a metrics folder is logged and ignored', async () => {
    const script = `const fs = require('node:fs'); const e = process.env;
      if (!fs.statSync(e.FLOTILLA_DATASET).isFile()) process.exit(3);
      if (fs.existsSync(e.FLOTILLA_OUTPUT)) process.exit(4);
      fs.writeFileSync(e.FLOTILLA_OUTPUT, 'onnx bytes'); fs.mkdirSync(e.FLOTILLA_METRICS);`;
    const { result, logs } = await run(script);
    const r = await result;
    assert.deepEqual(r.kind === 'model' && r.metrics, {});
    assert.ok(logs.some((l) => /FLOTILLA_METRICS \(.*metrics\.json\) is the path of a JSON file to write, but the trainer made it a folder/.test(l)), logs.join('\n'));
  });
});
