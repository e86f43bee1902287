// Registry benchmarks: model upload throughput (vs a plain copy of the same bytes on the same disk)
// and registry listing latency with 10,000 versions in the database.
import { copyFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { artifacts, models, modelVersions } from '../server/db/schema.ts';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';
import { startControlPlane } from '../test/helpers/control-plane.ts';
import { percentile, printTable, timeMany, type BenchRow } from './lib.ts';

export async function runRegistryBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const cp = await startControlPlane({ maxUploadBytes: 4 * 1024 ** 3 });
  const work = await mkdtemp(path.join(tmpdir(), 'flotilla-bench-'));
  try {
    // A 256 MiB model: one large initializer, like a real mid-size network.
    const n = 64 * 1024 * 1024;
    const bytes = encodeModel({
      inputs: [valueInfo('x', 'float32', ['batch', 1024])],
      outputs: [valueInfo('y', 'float32', ['batch', 65536])],
      initializers: [floatTensor('W', [1024, 65536], new Float32Array(n).fill(0.5))],
      nodes: [node('MatMul', ['x', 'W'], ['y'])],
    });
    const file = path.join(work, 'big.onnx');
    await writeFile(file, bytes);
    const size = (await stat(file)).size;
    const mb = size / 1e6;

    // The floor for an HTTP upload: a node:http server that streams the body into a file, posted to
    // with the same client as the real upload.
    const plain = http.createServer((req, res) => {
      pipeline(req, createWriteStream(path.join(work, 'plain.bin'))).then(() => res.writeHead(201).end('{}'), () => res.writeHead(500).end());
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
    // node:http piping the file: fetch with a web ReadableStream body ran at ≈ 20 MB/s here and
    // hid the server's own cost behind the client's.
    const post = (url: string, headers: Record<string, string>) =>
      new Promise<void>((resolve, reject) => {
        const req = http.request(url, { method: 'POST', headers: { ...headers, 'content-length': String(size), 'content-type': 'application/octet-stream' } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d));
          res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`upload to ${url} failed: ${res.statusCode} ${text}`))));
        });
        req.on('error', reject);
        pipeline(createReadStream(file), req).catch(reject);
      });

    const copyMs: number[] = [];
    const uploadMs: number[] = [];
    const plainMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      let t = performance.now();
      await copyFile(file, path.join(work, `copy-${i}.onnx`));
      copyMs.push(performance.now() - t);
      await rm(path.join(work, `copy-${i}.onnx`));
      t = performance.now();
      await post(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/`, {});
      plainMs.push(performance.now() - t);
      await rm(path.join(work, 'plain.bin'));
      t = performance.now();
      await post(`${cp.url}/api/v1/models/big/versions`, { authorization: `Bearer ${cp.adminToken}` });
      uploadMs.push(performance.now() - t);
    }
    await new Promise((r) => plain.close(r));
    const up = mb / (Math.min(...uploadMs) / 1000);
    const plainRate = mb / (Math.min(...plainMs) / 1000);
    const cp_ = mb / (Math.min(...copyMs) / 1000);
    rows.push({ benchmark: `model upload (${mb.toFixed(0)} MB, HTTP, hash + ONNX inspect)`, value: up, unit: 'MB/s', baseline: 'plain HTTP upload into a file', baselineValue: plainRate, ratio: up / plainRate, note: 'best of 3; target ≥ 0.5×' });
    rows.push({ benchmark: 'plain HTTP upload into a file', value: plainRate, unit: 'MB/s', baseline: 'fs.copyFile same bytes', baselineValue: cp_, ratio: plainRate / cp_, note: 'node:http → createWriteStream, same client' });

    // 10,000 versions of one model (plus 200 other models), inserted directly.
    const sha = 'a'.repeat(64);
    await cp.plane.db.insert(artifacts).values({ sha256: sha, size: 100, mediaType: 'application/x-onnx' });
    const [m] = await cp.plane.db.insert(models).values({ name: 'many' }).returning();
    const version = (v: number, modelId: number) => ({
      modelId,
      version: v,
      artifactSha256: sha,
      size: 100,
      inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 8] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['batch', 3] }],
      paramCount: 27,
      initializerBytes: 108,
      metrics: { accuracy: 0.9 },
      tags: {},
    });
    for (let start = 1; start <= 10_000; start += 500) {
      await cp.plane.db.insert(modelVersions).values(Array.from({ length: 500 }, (_, i) => version(start + i, m.id)));
    }
    for (let i = 0; i < 200; i++) {
      const [o] = await cp.plane.db.insert(models).values({ name: `model-${i}` }).returning();
      await cp.plane.db.insert(modelVersions).values(version(1, o.id));
    }
    const get = (p: string) => cp.api('GET', p).then((r) => {
      if (r.status !== 200) throw new Error(`${p}: ${r.status}`);
    });
    await get('/api/v1/models'); // warm up
    const health = await timeMany(200, () => get('/healthz'));
    const baseline = percentile(health, 50);
    for (const [label, p] of [
      ['GET /models (201 models, 10,200 versions)', '/api/v1/models'],
      ['GET /models/many/versions?limit=100', '/api/v1/models/many/versions?limit=100'],
      ['GET /models/many/versions/latest', '/api/v1/models/many/versions/latest'],
      ['GET /models/many/versions/5000', '/api/v1/models/many/versions/5000'],
    ] as const) {
      const t = await timeMany(200, () => get(p));
      rows.push({ benchmark: `${label} p50`, value: percentile(t, 50), unit: 'ms', baseline: 'GET /healthz p50', baselineValue: baseline, ratio: percentile(t, 50) / baseline });
      rows.push({ benchmark: `${label} p95`, value: percentile(t, 95), unit: 'ms' });
    }
  } finally {
    await cp.stop();
    await rm(work, { recursive: true, force: true });
  }
  printTable('Registry', rows);
  return rows;
}
