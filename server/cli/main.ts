// The `flotilla` CLI: a thin client of the REST API. Every command takes --json.
import { Command, CommanderError } from 'commander';
import { apiClient, type Api } from './api.ts';
import { registerAdminCommands } from './commands/admin.ts';
import { registerDatasetCommands } from './commands/datasets.ts';
import { registerEventCommands } from './commands/events.ts';
import { registerFleetCommands } from './commands/fleet.ts';
import { registerHistoryCommands } from './commands/history.ts';
import { registerWebhookCommands } from './commands/webhooks.ts';
import { registerJobCommands } from './commands/jobs.ts';
import { registerModelCommands } from './commands/models.ts';
import { registerMonitoringCommands } from './commands/monitoring.ts';
import { registerOptimizeCommand } from './commands/optimize.ts';
import { registerReleaseCommands } from './commands/release.ts';
import { registerRetrainCommands } from './commands/retrain.ts';
import { registerRolloutCommands } from './commands/rollouts.ts';
import { registerSampleCommands } from './commands/samples.ts';
import { registerSettingsCommands } from './commands/settings.ts';
import { registerDriftAdminCommands } from './commands/drift-admin.ts';
import { registerGroundTruthCommands } from './commands/ground-truth.ts';
import { registerModelRunCommand } from './commands/model-run.ts';
import { registerDatasetPullCommand } from './commands/dataset-pull.ts';
import { registerWhoamiCommand } from './commands/whoami.ts';
import { registerBrokerCommands } from './commands/broker.ts';
import { registerCompletionCommand } from './commands/completion.ts';
import { registerStatusCommand } from './commands/status.ts';
import type { CliConfig } from './env.ts';
import type { Output } from './output.ts';
import { commandNamed, reportError } from './report-error.ts';

// --json may sit anywhere on the line; errors raised before commander parsed it (usage errors) need it too.
const jsonRequested = process.argv.slice(2).includes('--json');

const program = new Command('flotilla')
  .description('Flotilla: ML model fleet manager (control plane CLI)')
  .option('--json', 'machine-readable JSON output')
  .exitOverride()
  // A usage error is reported by report-error.ts: one line naming the command's --help (or the JSON
  // object with --json), never commander's text followed by the whole help.
  .configureOutput({ outputError: () => undefined });

// The configuration (env.ts, with zod) is loaded before a command's action runs, not for `--help`
// or a usage error: start-up time is most of a CLI command's time (README, "CLI start-up").
let loadCliConfig: (() => CliConfig) | undefined;
program.hook('preAction', async () => {
  loadCliConfig ??= (await import('./env.ts')).loadCliConfig;
});
let config: CliConfig | undefined;
const getConfig = () => (config ??= loadCliConfig!());
let api: Api | undefined;
const ctx = {
  config: getConfig,
  api: () => (api ??= apiClient(getConfig())),
  out: (): Output => ({ json: Boolean(program.opts().json) }),
};
registerModelCommands(program, ctx);
registerFleetCommands(program, ctx);
registerReleaseCommands(program, ctx);
registerAdminCommands(program, ctx);
registerMonitoringCommands(program, ctx);
registerDatasetCommands(program, ctx);
registerOptimizeCommand(program, ctx);
registerRetrainCommands(program, ctx);
registerJobCommands(program, ctx);
registerRolloutCommands(program, ctx);
registerSettingsCommands(program, ctx);
registerSampleCommands(program, ctx);
registerEventCommands(program, ctx);
registerHistoryCommands(program, ctx);
registerWebhookCommands(program, ctx);
registerDriftAdminCommands(program, ctx);
registerGroundTruthCommands(program, ctx);
registerModelRunCommand(program, ctx);
registerDatasetPullCommand(program, ctx);
registerWhoamiCommand(program, ctx);
registerStatusCommand(program, ctx);
registerBrokerCommands(program, ctx);
// Last: it walks the commands registered before it.
registerCompletionCommand(program, ctx);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Help and version end in a CommanderError with exit code 0.
  process.exitCode = err instanceof CommanderError && err.exitCode === 0 ? 0 : reportError(err, jsonRequested || Boolean(program.opts().json), commandNamed(program, process.argv.slice(2)));
}
