// What operators deploy (deploy/): every Grafana panel queries metrics a real control plane exports,
// the compose stack and its config files hang together (and `docker compose config` accepts them where
// Docker runs), the Mosquitto config starts a real mosquitto that refuses anonymous clients, and the
// systemd units pass `systemd-analyze verify`. Label names in panel queries are checked against the
// metrics' declared labels too.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { parse as parseYaml } from 'yaml';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const run = promisify(execFile);
const DEPLOY = path.resolve(import.meta.dirname, '../deploy');
const DASHBOARDS = path.join(DEPLOY, 'grafana/dashboards');

/** Metric names a Prometheus text exposition declares, with the series names histograms and summaries add. */
function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, type] = m;
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression selects: strings, label matchers, ranges, grouping clauses and function calls removed. */
export function metricNamesOf(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(after)) continue; // a function
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Label names an expression matches on (`metric{label=...}`) or groups by (`by (label, ...)`), per clause kind. */
export function labelNamesOf(expr: string): { matchers: { metric: string; labels: string[] }[]; grouping: string[] } {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const matchers = [...noStrings.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}/g)].map((m) => ({
    metric: m[1],
    labels: [...m[2].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]),
  }));
  const grouping = [...noStrings.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((l) => l.trim()).filter(Boolean));
  return { matchers, grouping };
}

interface Panel {
  title: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

async function dashboards(): Promise<{ file: string; json: { uid: string; title: string; panels: Panel[] } }[]> {
  const files = (await readdir(DASHBOARDS)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(files.map(async (file) => ({ file, json: JSON.parse(await readFile(path.join(DASHBOARDS, file), 'utf8')) })));
}

function panelsOf(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]); // rows nest panels
}

function commandWorks(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

describe('deploy/ artifacts', () => {
  let plane: TestPlane;
  let exported: Set<string>;

  before(async () => {
    plane = await startControlPlane();
    const res = await fetch(`${plane.url}/metrics`);
    assert.equal(res.status, 200);
    exported = exportedNames(await res.text());
  });
  after(async () => {
    await plane?.stop();
  });

  test('the metric-name extractor finds names inside functions, aggregations and label matchers', () => {
    assert.deepEqual(
      metricNamesOf('histogram_quantile(0.95, sum by (le, route) (rate(flotilla_x_bucket{route=~"/a|b", le!="+Inf"}[5m]))) / on(job) group_left sum(flotilla_y) or vector(0)'),
      ['flotilla_x_bucket', 'flotilla_y'],
    );
    // So a panel on a metric the server does not export is caught.
    assert.ok(!exported.has(metricNamesOf('sum(rate(flotilla_no_such_metric_total[5m]))')[0]));
  });

  test('the five dashboards exist, each with a unique uid and panels that all have a query', async () => {
    const all = await dashboards();
    assert.deepEqual(all.map((d) => d.file), ['drift.json', 'fleet-health.json', 'ingest.json', 'rollouts.json', 'update-failures.json']);
    assert.equal(new Set(all.map((d) => d.json.uid)).size, all.length);
    for (const { file, json } of all) {
      for (const p of panelsOf(json.panels)) {
        if ((p as { type?: string }).type === 'row') continue;
        assert.ok(p.targets?.some((t) => t.expr?.trim()), `${file}: panel "${p.title}" has no PromQL expression`);
      }
    }
  });

  test('every dashboard panel queries only metrics the control plane exports on /metrics', async () => {
    assert.ok(exported.has('flotilla_devices_online') && exported.has('flotilla_ingest_flush_seconds_bucket'), 'scrape parsed');
    const missing: string[] = [];
    let checked = 0;
    for (const { file, json } of await dashboards()) {
      for (const p of panelsOf(json.panels)) {
        for (const t of p.targets ?? []) {
          const names = metricNamesOf(t.expr ?? '');
          assert.ok(names.length > 0 || !t.expr, `${file}: "${p.title}": no metric in ${t.expr}`);
          for (const n of names) {
            checked++;
            if (!exported.has(n)) missing.push(`${file}: "${p.title}": ${n}`);
          }
        }
      }
    }
    assert.deepEqual(missing, [], `panels on metrics /metrics does not export:\n${missing.join('\n')}`);
    assert.ok(checked > 30, `only ${checked} metric references found`);
  });

  test('every label a panel matches on or groups by is one the metric carries', async () => {
    const registry = plane.plane.metrics.registry;
    const labelsOf = (name: string): string[] | undefined => {
      const metric = registry.getSingleMetric(name) ?? registry.getSingleMetric(name.replace(/_(bucket|sum|count)$/, ''));
      if (!metric) return undefined;
      const own = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
      return name.endsWith('_bucket') ? [...own, 'le'] : own;
    };
    const TARGET_LABELS = ['instance', 'job']; // added by Prometheus to every scraped series
    const wrong: string[] = [];
    for (const { file, json } of await dashboards()) {
      for (const p of panelsOf(json.panels)) {
        for (const t of p.targets ?? []) {
          const { matchers, grouping } = labelNamesOf(t.expr ?? '');
          for (const m of matchers) {
            const known = labelsOf(m.metric);
            for (const l of m.labels) if (!known?.includes(l) && !TARGET_LABELS.includes(l)) wrong.push(`${file}: "${p.title}": ${m.metric} has no label ${l}`);
          }
          const inExpr = metricNamesOf(t.expr ?? '').flatMap((n) => labelsOf(n) ?? []);
          for (const l of grouping) if (!inExpr.includes(l) && !TARGET_LABELS.includes(l)) wrong.push(`${file}: "${p.title}": no metric in the query has label ${l}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
    // The check sees labels: a made-up one is reported.
    assert.deepEqual(labelNamesOf('sum by (channel) (rate(flotilla_ingest_stored_total{stage="x"}[5m]))'), { matchers: [{ metric: 'flotilla_ingest_stored_total', labels: ['stage'] }], grouping: ['channel'] });
    assert.ok(!labelsOf('flotilla_ingest_stored_total')?.includes('stage'));
  });

  test('the dashboards use the datasource Grafana is provisioned with', async () => {
    const ds = parseYaml(await readFile(path.join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8'));
    const uid = ds.datasources[0].uid;
    for (const { file, json } of await dashboards()) {
      for (const p of panelsOf(json.panels)) {
        const used = [(p as { datasource?: { uid?: string } }).datasource?.uid, ...(p.targets ?? []).map((t) => (t as { datasource?: { uid?: string } }).datasource?.uid)];
        for (const u of used) assert.equal(u, uid, `${file}: "${p.title}" uses datasource ${u}`);
      }
    }
    const providers = parseYaml(await readFile(path.join(DEPLOY, 'grafana/provisioning/dashboards/flotilla.yml'), 'utf8'));
    const compose = parseYaml(await readFile(path.join(DEPLOY, 'compose.yaml'), 'utf8'));
    const mount = (compose.services.grafana.volumes as string[]).find((v) => v.startsWith('./grafana/dashboards:'));
    assert.equal(mount?.split(':')[1], providers.providers[0].options.path, 'Grafana loads dashboards from where compose mounts them');
  });

  test('compose.yaml: control plane, Mosquitto with dynamic security, Prometheus scraping /metrics, Grafana; every mounted file exists', async () => {
    const compose = parseYaml(await readFile(path.join(DEPLOY, 'compose.yaml'), 'utf8'));
    for (const s of ['flotilla', 'mosquitto', 'prometheus', 'grafana']) assert.ok(compose.services[s], `service ${s}`);
    const flotilla = compose.services.flotilla;
    assert.ok(existsSync(path.resolve(DEPLOY, flotilla.build.context, flotilla.build.dockerfile)), 'Dockerfile');
    assert.match(flotilla.environment.FLOTILLA_MQTT_URL, /^mqtt:\/\/mosquitto:1883$/);
    for (const [name, svc] of Object.entries<{ volumes?: string[] }>(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const source = v.split(':')[0];
        if (source.startsWith('.')) assert.ok(existsSync(path.resolve(DEPLOY, source)), `${name}: ${source} exists`);
      }
    }
    const conf = await readFile(path.join(DEPLOY, 'mosquitto/mosquitto.conf'), 'utf8');
    assert.match(conf, /^plugin \S*mosquitto_dynamic_security\.so$/m);
    assert.match(conf, /^allow_anonymous false$/m);
    assert.match(conf, /^persistence true$/m);
    const prom = parseYaml(await readFile(path.join(DEPLOY, 'prometheus/prometheus.yml'), 'utf8'));
    const job = prom.scrape_configs.find((j: { job_name: string }) => j.job_name === 'flotilla');
    assert.equal(job.metrics_path, '/metrics');
    assert.deepEqual(job.static_configs[0].targets, ['flotilla:8080']);
    const dockerfile = await readFile(path.join(DEPLOY, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20-slim$/m);
    assert.match(dockerfile, /npm ci/);
    assert.match(dockerfile, /^CMD \["node", "bin\/flotilla-server\.js"\]$/m);
  });

  test('docker compose config accepts compose.yaml', async (t) => {
    if (!commandWorks('docker', ['info']) || !commandWorks('docker', ['compose', 'version'])) {
      t.skip('no Docker engine with the compose plugin here (`docker info` / `docker compose version` failed)');
      return;
    }
    const env = { ...process.env, FLOTILLA_PUBLIC_URL: 'http://example.test:8080', FLOTILLA_PUBLIC_MQTT_URL: 'mqtt://example.test:1883', MOSQUITTO_ADMIN_PASSWORD: 'x', GRAFANA_ADMIN_PASSWORD: 'x' };
    const { stdout } = await run('docker', ['compose', '-f', path.join(DEPLOY, 'compose.yaml'), 'config', '--format', 'json'], { env });
    assert.ok(JSON.parse(stdout).services.flotilla);
  });

  test('mosquitto.conf starts a real Mosquitto with dynamic security: anonymous refused, the admin accepted', async (t) => {
    const mosquitto = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find(existsSync);
    const plugin = ['/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so', '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so', '/usr/lib/mosquitto_dynamic_security.so'].find(existsSync);
    if (!mosquitto || !plugin || spawnSync('mosquitto_ctrl', ['--help'], { stdio: 'ignore' }).error) {
      t.skip('mosquitto, mosquitto_ctrl or the dynamic-security plugin is not installed');
      return;
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-mosquitto-'));
    await chmod(dir, 0o755); // started as root, mosquitto drops to its own user, which must read the dynsec file
    const port = await freePort();
    // The image's paths become this machine's; everything else is the file as shipped.
    const conf = (await readFile(path.join(DEPLOY, 'mosquitto/mosquitto.conf'), 'utf8'))
      .replace(/^plugin .*$/m, `plugin ${plugin}`)
      .replaceAll('/mosquitto/data/', `${dir}/`)
      .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`);
    await writeFile(path.join(dir, 'mosquitto.conf'), conf);
    await run('mosquitto_ctrl', ['dynsec', 'init', path.join(dir, 'dynamic-security.json'), 'admin', 'admin-pw']);
    const broker = spawn(mosquitto, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    broker.stdout.on('data', (d) => (log += d));
    broker.stderr.on('data', (d) => (log += d));
    try {
      const url = `mqtt://127.0.0.1:${port}`;
      const admin = await connectEventually(url, { username: 'admin', password: 'admin-pw' }, () => log);
      const reply = new Promise<string>((resolve) => admin.on('message', (_t, p) => resolve(p.toString())));
      await admin.subscribeAsync('$CONTROL/dynamic-security/v1/response');
      await admin.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [{ command: 'listClients' }] }));
      assert.deepEqual(JSON.parse(await reply).responses[0].data.clients, ['admin']);
      await admin.endAsync();
      await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000 }), /Not authorized|not authorised/i);
    } finally {
      broker.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('systemd units pass systemd-analyze verify', async (t) => {
    if (!commandWorks('systemd-analyze', ['--version'])) {
      t.skip('systemd-analyze is not available');
      return;
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-units-'));
    try {
      for (const unit of ['flotilla-server.service', 'flotilla-agent.service']) {
        // verify checks that ExecStart's binary exists: point it at this machine's node.
        const text = (await readFile(path.join(DEPLOY, unit), 'utf8')).replaceAll('/usr/bin/node', process.execPath);
        await writeFile(path.join(dir, unit), text);
        const r = spawnSync('systemd-analyze', ['verify', path.join(dir, unit)], { encoding: 'utf8', timeout: 30_000 });
        // Unknown keys and bad values are only warnings (exit 0): any line about our unit fails the test.
        const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(unit));
        assert.deepEqual(complaints, [], `${unit}:\n${complaints.join('\n')}`);
        assert.equal(r.status, 0, `${unit}: systemd-analyze verify exited ${r.status}: ${r.stderr}`);
      }
      const server = await readFile(path.join(DEPLOY, 'flotilla-server.service'), 'utf8');
      assert.match(server, /^EnvironmentFile=-\/etc\/flotilla\/flotilla\.env$/m);
      assert.match(server, /^StateDirectory=flotilla$/m);
      // The program it starts is this repository's, installed in /opt/flotilla.
      const execStart = /^ExecStart=\S+ \/opt\/flotilla\/(\S+)$/m.exec(server);
      assert.ok(execStart && existsSync(path.resolve(DEPLOY, '..', execStart[1])), `ExecStart names a file of the repository: ${execStart?.[1]}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Mosquitto takes a moment to listen; retry without timing assumptions beyond a generous bound. */
async function connectEventually(url: string, auth: { username: string; password: string }, log: () => string): Promise<mqtt.MqttClient> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      return await mqtt.connectAsync(url, { ...auth, reconnectPeriod: 0, connectTimeout: 5000 });
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`mosquitto did not accept the admin: ${String(last)}\n${log()}`);
}
