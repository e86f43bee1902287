// The console: first-load JavaScript gzipped (budget 300 KB; the playground's onnxruntime-web loads
// only on that page) and, in Chromium against a real control plane with 10,000 seeded devices, the
// time until the fleet page has rendered them and the time to re-filter them (budget 1 s each).
// Baseline for the render: the /api/v1/fleet request alone, measured in the same run.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { devices } from '../server/db/schema.ts';
import { ensureConsoleBuilt, launchBrowser, REPO } from '../test/helpers/browser.ts';
import { startControlPlane } from '../test/helpers/control-plane.ts';
import { printTable, type BenchRow } from './lib.ts';

const N = 10_000;
const DIST = path.join(REPO, 'web', 'dist');

async function firstLoadBytes(): Promise<{ js: number; css: number; files: string[] }> {
  const html = await readFile(path.join(DIST, 'index.html'), 'utf8');
  // What index.html loads up front: the entry script and its modulepreloads (and the CSS).
  const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  let js = 0;
  let css = 0;
  for (const r of refs) {
    const gz = gzipSync(await readFile(path.join(DIST, r))).length;
    if (r.endsWith('.js')) js += gz;
    else if (r.endsWith('.css')) css += gz;
  }
  return { js, css, files: refs };
}

/** The playground's lazily loaded files (never on the first load): its page chunk, onnxruntime-web's JS and wasm. */
async function playgroundBytes(): Promise<Array<{ what: string; gz: number; file: string }>> {
  const files = await readdir(path.join(DIST, 'assets'));
  const kinds = [
    { what: 'playground page chunk JS', re: /^playground-.*\.js$/ },
    { what: 'onnxruntime-web JS', re: /^ort\..*\.js$/ },
    { what: 'onnxruntime-web wasm', re: /^ort-wasm.*\.wasm$/ },
  ];
  const out = [];
  for (const k of kinds) {
    for (const f of files.filter((x) => k.re.test(x))) out.push({ what: k.what, gz: gzipSync(await readFile(path.join(DIST, 'assets', f))).length, file: f });
  }
  return out;
}

export async function runWebBench(): Promise<BenchRow[]> {
  ensureConsoleBuilt();
  const rows: BenchRow[] = [];
  const size = await firstLoadBytes();
  rows.push({ benchmark: 'first-load JS (gzip)', value: size.js / 1024, unit: 'KB', baseline: 'budget', baselineValue: 300, ratio: size.js / 1024 / 300, note: size.files.join(' ') });
  rows.push({ benchmark: 'first-load CSS (gzip)', value: size.css / 1024, unit: 'KB' });
  for (const p of await playgroundBytes()) rows.push({ benchmark: `lazy: ${p.what} (gzip)`, value: p.gz / 1024, unit: 'KB', note: p.file });

  const cp = await startControlPlane();
  const browser = await launchBrowser();
  try {
    const sites = ['berlin', 'munich', 'lab', 'paris', 'oslo'];
    const now = Date.now();
    const all = Array.from({ length: N }, (_, i) => ({
      id: `dev_bench${String(i).padStart(6, '0')}`,
      name: `edge-${sites[i % 5]}-${i}`,
      status: 'approved' as const,
      labels: { site: sites[i % 5], hw: i % 3 ? 'rpi4' : 'jetson', ring: i % 10 ? 'stable' : 'canary' },
      facts: { arch: 'arm64', cpus: 4, memoryBytes: 4e9, os: 'linux', agentVersion: '0.1.0' },
      credentialHash: 'bench',
      online: i % 4 !== 0,
      lastSeen: new Date(now - (i % 600) * 1000).toISOString(),
      updateState: i % 7 ? 'active' : 'failed',
    }));
    for (let i = 0; i < N; i += 500) await cp.plane.db.insert(devices).values(all.slice(i, i + 500));

    const apiTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const res = await fetch(`${cp.url}/api/v1/fleet`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
      await res.json();
      apiTimes.push(performance.now() - t);
    }
    const api = Math.min(...apiTimes);

    const page = await browser.context.newPage();
    page.setDefaultTimeout(60_000);
    await page.addInitScript((token) => sessionStorage.setItem('flotilla.token', token), cp.adminToken);
    await page.goto(`${cp.url}/tokens`); // warm the browser cache with the assets, as a returning operator has
    await page.getByRole('heading', { level: 1, name: 'API tokens' }).waitFor();
    const renders: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await page.goto(`${cp.url}/`);
      await page.getByText(`Showing ${N} of ${N}`).waitFor();
      renders.push(performance.now() - t);
    }
    const render = Math.min(...renders);
    rows.push({ benchmark: `GET /api/v1/fleet (${N} devices)`, value: api, unit: 'ms', note: 'baseline: the data alone' });
    rows.push({ benchmark: `fleet page: navigate → ${N} rows rendered`, value: render, unit: 'ms', baseline: 'budget', baselineValue: 1000, ratio: render / 1000, note: `API share ${((api / render) * 100).toFixed(0)} %` });

    // Re-filter in the page: type a selector, time until the count shows the filtered rows.
    const refilter = async (selector: string, expected: number) =>
      page.evaluate(
        async ({ selector, expected }) => {
          const input = [...document.querySelectorAll('label')].find((l) => l.textContent?.startsWith('Label selector'))!.querySelector('input')!;
          const t = performance.now();
          input.value = selector;
          input.dispatchEvent(new Event('input', { bubbles: true }));
          for (;;) {
            await new Promise(requestAnimationFrame);
            if (document.body.textContent?.includes(`Showing ${expected} of`)) return performance.now() - t;
          }
        },
        { selector, expected },
      );
    const filterTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      filterTimes.push(await refilter('site=berlin,hw in (rpi4)', all.filter((d) => d.labels.site === 'berlin' && d.labels.hw === 'rpi4').length));
      await refilter('', N);
    }
    const filter = Math.min(...filterTimes);
    rows.push({ benchmark: `fleet page: re-filter ${N} by selector`, value: filter, unit: 'ms', baseline: 'budget', baselineValue: 1000, ratio: filter / 1000 });
    const sortT = await page.evaluate(async () => {
      const button = document.querySelector('button[aria-label="Sort by Last seen"]') as HTMLButtonElement;
      const t = performance.now();
      button.click();
      await new Promise(requestAnimationFrame);
      await new Promise(requestAnimationFrame);
      return performance.now() - t;
    });
    rows.push({ benchmark: `fleet page: sort ${N} by last seen`, value: sortT, unit: 'ms', baseline: 'budget', baselineValue: 1000, ratio: sortT / 1000 });
  } finally {
    await browser.close();
    await cp.stop();
  }
  printTable('web console', rows);
  return rows;
}
