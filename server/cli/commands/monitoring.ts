// `flotilla drift|telemetry|alerts` and `flotilla models reference`: monitoring from the terminal.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { ago, duration } from '../human.ts';
import { CliError, emit, keyValues, table, type Output, wholeNumber } from '../output.ts';

function splitRef(ref: string): { name: string; ref: string } {
  const at = ref.indexOf('@');
  return at === -1 ? { name: ref, ref: 'latest' } : { name: ref.slice(0, at), ref: ref.slice(at + 1) };
}

const num = (v: number | null | undefined, digits = 4) => (v === null || v === undefined ? '-' : String(Number(v.toPrecision(digits))));
const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(2)} %`);
const ms = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${v.toPrecision(3)} ms`);
const bytes = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v >= 1e9 ? `${(v / 1e9).toFixed(2)} GB` : `${(v / 1e6).toFixed(1)} MB`);

interface FeatureRow {
  feature: string;
  method: string;
  score: number | null;
  threshold: number;
  pValue?: number;
  drifted: boolean;
  verdict: string;
  reason?: string;
  n: number;
}

function driftRows(rows: FeatureRow[]) {
  return rows.map((f) => ({
    feature: f.feature,
    method: f.method,
    score: num(f.score),
    threshold: num(f.threshold),
    drifted: f.verdict === 'insufficient_data' ? `n/a (${f.reason ?? 'too few samples'})` : f.drifted ? 'yes' : 'no',
    n: f.n,
  }));
}

export function registerMonitoringCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('drift <model>')
    .description('drift of model@N for a cohort (or every device running it) over a window, per feature and output')
    .option('--cohort <name>', 'cohort (default: the whole fleet)')
    .option('--window <duration>', 'e.g. 15m, 1h, 1d', '1h')
    .option('--end <time>', 'end of the window, ISO 8601 (default now)')
    .action(async (model: string, o: { cohort?: string; window: string; end?: string }) => {
      const r = await call(ctx.api().api.v1.drift.$get({ query: { model, cohort: o.cohort, window: o.window, end: o.end } }));
      const d = r.dataset;
      emit(ctx.out(), r, () =>
        [
          `${r.model} · ${r.cohort ? `cohort ${r.cohort}` : 'all devices'} · ${r.window.start} → ${r.window.end} · ${r.windows} window(s), ${r.rows} rows (reference ${r.referenceRows} rows)`,
          '',
          table(driftRows(r.features), ['feature', 'method', 'score', 'threshold', 'drifted', 'n']),
          ...(r.outputs.length ? ['', table(driftRows(r.outputs).map(({ feature, ...rest }) => ({ output: feature, ...rest })), ['output', 'method', 'score', 'threshold', 'drifted', 'n'])] : []),
          '',
          d.verdict === 'insufficient_data'
            ? 'dataset: insufficient data (no feature has enough samples yet)'
            : `dataset: ${d.drifted ? 'drifted' : 'not drifted'} (${d.driftedCount} of ${d.evaluated} features drifted, ${pct(d.driftedShare)}; threshold ${pct(d.threshold)})`,
          ...r.dropped.map((x) => `dropped: ${x.windows} window(s) (${x.rows} rows) from ${x.devices} device(s), ${x.reason}, last ${x.lastAt}: ${x.hint}`),
        ].join('\n'),
      );
    });

  program
    .command('telemetry <target>')
    .description('rate, errors, p50/p95/p99 latency, resources and monitoring data lost of a device (dev_…) or a cohort')
    .option('--window <duration>', 'e.g. 5m, 15m, 1h', '15m')
    .action(async (target: string, o: { window: string }) => {
      const query = target.startsWith('dev_') ? { device: target, window: o.window } : { cohort: target, window: o.window };
      const r = await call(ctx.api().api.v1.telemetry.$get({ query }));
      const errors = Object.entries(r.errors)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
      emit(ctx.out(), r, () =>
        [
          keyValues({
            target: 'device' in r.target ? `device ${r.target.device}` : `cohort ${r.target.cohort}`,
            window: `${o.window} (from ${ago(r.window.start)} to ${ago(r.window.end)})`,
            reports: r.reports,
            inferences: r.inferences,
            // Say what the number is an average over (README, "Telemetry": what the rate means).
            'rate while serving': r.activeRatePerSecond === null ? '-' : `${num(r.activeRatePerSecond)}/s (over the ${duration(r.activeSeconds)} ${'device' in r.target ? 'the device was' : 'of device time the devices were'} serving: seconds with at least one request)`,
            rate: r.ratePerSecond === null || !r.span ? '-' : `${num(r.ratePerSecond)}/s (${r.inferences} inferences averaged over the ${duration(r.span.seconds)} the reports cover, not only the seconds with traffic)`,
            errors: `${r.errorCount}${errors ? ` (${errors})` : ''}, ${pct(r.errorRatio)} of requests`,
            'latency p50': ms(r.latency.p50),
            'latency p95': ms(r.latency.p95),
            'latency p99': ms(r.latency.p99),
            'latency mean': ms(r.latency.meanMs),
            // Kept apart from errors: data the devices lost, not failed requests.
            'monitoring data lost': r.monitoring.lost
              ? `outbox dropped=${r.monitoring.lost.outboxDropped}, outbox corrupt=${r.monitoring.lost.outboxCorrupt}, stats dropped=${r.monitoring.lost.statsDropped}`
              : '- (not reported)',
            'outbox pending': r.monitoring.pending ? `${r.monitoring.pending.messages} messages, ${bytes(r.monitoring.pending.bytes)} (now)` : '-',
            'stats refused': r.monitoring.refusedStats.length ? r.monitoring.refusedStats.map((x) => `${x.windows} window(s) from ${x.devices} device(s), ${x.reason}`).join('; ') : '0',
          }),
          ...r.monitoring.refusedStats.map((x) => `stats refused (${x.reason}): ${x.hint}`),
          '',
          table(
            r.resources.devices.map((d) => ({ device: d.deviceId, cpu: pct(d.cpu), rss: bytes(d.rssBytes), diskFree: bytes(d.diskFreeBytes), uptime: duration(d.uptimeS), queue: d.queueDepth, outbox: d.outboxPending ?? '-', at: d.at })),
            ['device', 'cpu', 'rss', 'diskFree', 'uptime', 'queue', 'outbox', 'at'],
          ),
        ].join('\n'),
      );
    });

  const alertsCmd = program
    .command('alerts')
    .description('drift alerts, newest first; `alerts deliveries` for the alert webhook outbox')
    .option('--open', 'only open alerts')
    .option('--limit <n>', 'at most this many', wholeNumber, '50')
    .action(async (o: { open?: boolean; limit: string }) => {
      const r = await call(ctx.api().api.v1.alerts.$get({ query: { status: o.open ? 'open' : undefined, limit: o.limit } }));
      emit(ctx.out(), r, () =>
        table(
          r.alerts.map((a) => ({ ...a, score: num(a.score), threshold: num(a.threshold), features: a.features.map((f) => f.feature).join(',') })),
          ['id', 'status', 'model', 'cohort', 'feature', 'score', 'threshold', 'features', 'openedAt', 'closedAt'],
        ),
      );
    });

  alertsCmd
    .command('deliveries')
    .description('alert webhook deliveries, newest first (operators and up)')
    .option('--status <status>', 'pending | delivered | failed')
    .action(async (o: { status?: string }) => {
      if (o.status !== undefined && !['pending', 'delivered', 'failed'].includes(o.status)) throw new CliError('--status is pending, delivered or failed', 2);
      const r = await call(ctx.api().api.v1.alerts.deliveries.$get({ query: { status: o.status as 'pending' | 'delivered' | 'failed' | undefined } }));
      emit(ctx.out(), r, () =>
        table(
          r.deliveries.map((d) => ({ ...d, 'next attempt': d.status === 'pending' ? d.nextAttemptAt : '-', 'last error': d.lastError })),
          ['id', 'event', 'status', 'attempts', 'next attempt', 'last error'],
        ),
      );
    });

  // `models reference` joins the registry's `models` command (registered in models.ts).
  const models = program.commands.find((c) => c.name() === 'models') ?? program.command('models');
  models
    .command('reference <model> [file]')
    .description('show the reference profile of model@N; with a file or --dataset, set it from its reference dataset (.csv with a header, .jsonl / .ndjson, or a .json array), or from a stored dataset with --dataset')
    .option('--dataset <dataset>', 'a pushed dataset version (name@N): its feature columns, or for an image dataset the image features devices compute (preprocessing from the nearest bundle definition)')
    .option('--preprocess <json>', "image datasets, versions without a bundle: a bundle definition's image preprocess as JSON")
    .option('--bins <n>', 'numeric bins (quantiles), default 20')
    .option('--categorical <columns>', 'comma-separated columns to treat as categorical although numeric')
    .option('--num-classes <n>', 'classes of a classifier (default: the model output width)')
    .action(async (model: string, file: string | undefined, o: { bins?: string; categorical?: string; numClasses?: string; dataset?: string; preprocess?: string }) => {
      if (file && o.dataset) throw new CliError('give a file or --dataset <name@N>, not both', 2);
      if (!file && !o.dataset) return showReference(ctx, model);
      if (o.preprocess && !o.dataset) throw new CliError('--preprocess goes with --dataset <images@N>', 2);
      let preprocess: Record<string, unknown> | undefined;
      if (o.preprocess) {
        try {
          preprocess = JSON.parse(o.preprocess);
        } catch {
          throw new CliError('--preprocess must be JSON, e.g. {"width":32,"height":32,"channels":"rgb"}', 2);
        }
      }
      const { name, ref } = splitRef(model);
      const endpoint = ctx.api().api.v1.models[':name'].versions[':ref'].reference;
      const query = { bins: o.bins, categorical: o.categorical, numClasses: o.numClasses };
      let r;
      if (o.dataset) {
        r = await call(endpoint.$post({ param: { name, ref }, query, json: { dataset: o.dataset, ...(preprocess && { preprocess }) } }));
      } else {
        const text = await readFile(file!, 'utf8').catch(() => {
          throw new CliError(`cannot read ${file}: give a reference dataset file (.csv, .jsonl, .ndjson or .json) or --dataset <name@N>`, 2);
        });
        const ext = path.extname(file!).toLowerCase();
        const type = ext === '.csv' ? 'text/csv' : ext === '.jsonl' || ext === '.ndjson' ? 'application/x-ndjson' : ext === '.json' ? 'application/json' : null;
        if (!type) throw new CliError(`unknown file type ${ext || '(none)'}: use .csv, .jsonl, .ndjson or .json`, 2);
        // The dataset goes as is (CSV stays CSV), so the server parses it exactly as it would from any client.
        r = await call(endpoint.$post({ param: { name, ref }, query, json: undefined as never }, { headers: { 'content-type': type }, init: { body: text } }));
      }
      const kinds = r.features.reduce((acc, f) => ({ ...acc, [f.kind]: (acc[f.kind] ?? 0) + 1 }), {} as Record<string, number>);
      const outputs = (r.layout as { outputs?: { task?: string } }).outputs?.task ?? 'none';
      emit(ctx.out(), r, () =>
        [
          `reference profile of ${r.model}: ${r.rows} rows, ${r.features.length} features (${Object.entries(kinds).map(([k, v]) => `${v} ${k}`).join(', ')}), outputs: ${outputs}`,
          '',
          table(
            r.features.map((f) => ({ ...f, min: num(f.min), max: num(f.max), mean: num(f.mean), std: num(f.std) })),
            ['name', 'kind', 'count', 'nulls', 'bins', 'categories', 'min', 'max', 'mean', 'std'],
          ),
          ...(r.warnings ?? []).map((w) => `warning: ${w}`),
        ].join('\n'),
      );
    });
}

/** `models reference <model@N>` with nothing to set: the stored profile. */
async function showReference(ctx: { api: () => Api; out: () => Output }, model: string): Promise<void> {
  const { name, ref } = splitRef(model);
  const r = await call(ctx.api().api.v1.models[':name'].versions[':ref'].reference.$get({ param: { name, ref }, query: {} }));
  const p = r as unknown as { model: string; rows: number; features: Array<Record<string, unknown>> };
  emit(ctx.out(), r, () => `reference profile of ${p.model}: ${p.rows} rows, ${p.features.length} features\n\n${table(p.features, ['name', 'kind', 'count', 'nulls', 'min', 'max', 'mean'])}`);
}
