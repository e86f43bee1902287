// `npm run simulate -- --devices N --server <url> [--enroll-token t] [--telemetry 10s] [--stats 60s]
// [--drift feature=x,shift=0.5] [--fail-updates 5%]`: N simulated devices (simulator/fleet.ts) and a
// live progress line. Runs until SIGINT/SIGTERM or `--duration`, then stops every device cleanly.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import type { DriftSpec } from './inputs.ts';
import { installCpuProfileToggle } from './cpu-profile-toggle.ts';
import { SimFleet, type FleetProgress } from './fleet.ts';
import { parseDrift, parseDurationMs, parsePositiveInt, parseSeconds, parseShare, SimOptionError } from './options.ts';

const program = new Command('simulate')
  .description('Runs N simulated Flotilla devices (the agent\'s own code, a stub instead of onnxruntime) against one control plane')
  .requiredOption('--devices <n>', 'number of simulated devices')
  .requiredOption('--server <url>', 'control plane URL')
  .option('--enroll-token <token>', 'enrollment token (first start; an auto-approving token lets them connect at once)')
  .option('--trust-root <key>', 'root public key to pin (default: trust on first use from the enrollment answer)')
  .option('--telemetry <duration>', 'telemetry interval (default: the server\'s agentConfig, 10s)')
  .option('--stats <duration>', 'stats window (default: the server\'s agentConfig, 60s)')
  .option('--drift <spec>', 'shift a feature of the simulated requests, in reference standard deviations: feature=f3,shift=0.5 (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--fail-updates <share>', 'share of devices whose updates fail (model load refused), e.g. 5%', '0')
  .option('--rows <n>', 'request rows per second per device with an active tabular bundle (0: none)', '1')
  .option('--probation <duration>', 'probation after each activation', '5s')
  .option('--download-splay <duration>', 'each device waits a random delay in [0, this) after accepting a desired state before downloading (the agent\'s --download-splay-ms)', '0')
  .option('--data-dir <dir>', 'parent of the devices\' data directories (kept; a rerun reuses the identities). Default: a temporary one, removed at exit')
  .option('--name-prefix <prefix>', 'device names are <prefix><index> (default sim-<host>-<pid>-, so several simulators can share a server)')
  .option('--concurrency <n>', 'devices starting (enrolling) at once', '50')
  .option('--connect-wait <duration>', 'each start slot waits up to this long for its device to connect over MQTT before the next starts (0: no wait)', '0')
  .option('--duration <duration>', 'stop after this long (default: run until Ctrl-C)')
  .addOption(new Option('--progress <format>', 'progress output').choices(['line', 'json', 'off']).default('line'))
  .option('--progress-every <duration>', 'how often the progress is shown', '1s')
  .option('--log-level <level>', 'agent logs (to stderr): fatal|error|warn|info|debug', 'error')
  .exitOverride()
  .showHelpAfterError();

function fail(message: string): never {
  process.stderr.write(`simulate: ${message}\n`);
  process.exit(2);
}

let opts: Record<string, string | string[] | undefined>;
try {
  program.parse(process.argv);
  opts = program.opts();
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  throw err;
}

let settings: ReturnType<typeof parse>;
function parse() {
  const str = (k: string) => opts[k] as string | undefined;
  try {
    new URL(str('server')!);
  } catch {
    throw new SimOptionError(`invalid --server: not a URL: "${str('server')}"`);
  }
  const rows = Number(str('rows'));
  if (!Number.isInteger(rows) || rows < 0 || rows > 1000) throw new SimOptionError(`invalid --rows: expected an integer from 0 to 1000, got "${str('rows')}"`);
  const level = str('logLevel') ?? 'error';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) throw new SimOptionError(`invalid --log-level: ${level}`);
  return {
    devices: parsePositiveInt('--devices', str('devices')!, 100_000),
    server: str('server')!,
    telemetryS: str('telemetry') ? parseSeconds('--telemetry', str('telemetry')!) : undefined,
    statsS: str('stats') ? parseSeconds('--stats', str('stats')!) : undefined,
    drift: (opts.drift as string[]).map(parseDrift) as DriftSpec[],
    failUpdates: parseShare('--fail-updates', str('failUpdates')!),
    rowsPerS: rows,
    probationMs: parseDurationMs('--probation', str('probation')!),
    downloadSplayMs: parseDurationMs('--download-splay', str('downloadSplay')!),
    concurrency: parsePositiveInt('--concurrency', str('concurrency')!, 10_000),
    connectWaitMs: parseDurationMs('--connect-wait', str('connectWait')!),
    durationMs: str('duration') ? parseDurationMs('--duration', str('duration')!) : undefined,
    progressMs: Math.max(50, parseDurationMs('--progress-every', str('progressEvery')!)),
    level,
  };
}
try {
  settings = parse();
} catch (err) {
  if (err instanceof SimOptionError) fail(err.message);
  throw err;
}

installCpuProfileToggle(process.env.FLOTILLA_SIM_CPU_PROFILE);
const tempDir = opts.dataDir ? null : await mkdtemp(path.join(os.tmpdir(), 'flotilla-sim-'));
const logger = pino({ name: 'flotilla-sim', level: settings.level }, pino.destination(2));
const fleet = new SimFleet({
  devices: settings.devices,
  server: settings.server,
  enrollToken: opts.enrollToken as string | undefined,
  trustRoot: opts.trustRoot as string | undefined,
  dataDir: path.resolve((opts.dataDir as string | undefined) ?? tempDir!),
  namePrefix: (opts.namePrefix as string | undefined) ?? `sim-${os.hostname()}-${process.pid}-`,
  telemetryS: settings.telemetryS,
  statsS: settings.statsS,
  failUpdates: settings.failUpdates,
  drift: settings.drift,
  rowsPerS: settings.rowsPerS,
  downloadSplayMs: settings.downloadSplayMs,
  startConcurrency: settings.concurrency,
  connectWaitMs: settings.connectWaitMs,
  probationMs: settings.probationMs,
  logger,
});

// Progress: one rewritten line on a terminal, one line per second otherwise (or JSON lines).
const format = opts.progress as 'line' | 'json' | 'off';
const tty = process.stdout.isTTY && format === 'line';
let last = { at: performance.now(), published: 0 };
let lastLine = 0;
const show = (final = false) => {
  const p: FleetProgress = fleet.progress();
  const now = performance.now();
  const rate = ((p.published - last.published) * 1000) / Math.max(1, now - last.at);
  last = { at: now, published: p.published };
  if (format === 'json') {
    const cpu = process.cpuUsage();
    process.stdout.write(JSON.stringify({ ...p, msgPerS: Math.round(rate * 10) / 10, startFailures: fleet.startFailures, cpuMs: Math.round((cpu.user + cpu.system) / 1000) }) + '\n');
  }
  else if (format === 'line') {
    const line = `devices ${p.started}/${p.devices}  connected ${p.connected}  updating ${p.updating}  active ${p.active}  failed ${p.failed}  msg/s ${rate.toFixed(1)}${fleet.startFailures ? `  start failures ${fleet.startFailures}` : ''}`;
    // Not a terminal: one line per second at most, whatever --progress-every says.
    if (tty) process.stdout.write(`\r${line.padEnd(100)}${final ? '\n' : ''}`);
    else if (final || now - lastLine >= 1000) {
      lastLine = now;
      process.stdout.write(`${line}\n`);
    }
  }
};
const ticker = setInterval(show, settings.progressMs);

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  const force = setTimeout(() => process.exit(1), 30_000);
  force.unref();
  await fleet.stop();
  show(true);
  if (fleet.firstStartError) process.stderr.write(`simulate: ${fleet.startFailures} device(s) failed to start; first: ${fleet.firstStartError}\n`);
  if (tempDir) await rm(tempDir, { recursive: true, force: true });
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
if (settings.durationMs !== undefined) setTimeout(() => void stop(0), settings.durationMs);

await fleet.start();
if (fleet.startFailures === settings.devices) await stop(1);
