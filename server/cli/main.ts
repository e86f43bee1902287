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
import type { CliConfig } from './env.ts';
import { CliError, type Output } from './output.ts';

const program = new Command('flotilla')
  .description('Flotilla: ML model fleet manager (control plane CLI)')
  .option('--json', 'machine-readable JSON output')
  .showHelpAfterError()
  .exitOverride();

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

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander already printed the usage error (or help/version, which exit 0).
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof CliError) {
    process.stderr.write(`flotilla: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`flotilla: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
