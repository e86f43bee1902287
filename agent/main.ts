// `flotilla-agent`: parses flags (over FLOTILLA_AGENT_* variables), starts the agent, and stops it
// cleanly on SIGINT/SIGTERM.
import { Command, CommanderError, Option } from 'commander';
import { Agent } from './agent.ts';
import { ConfigError, parseAgentConfig, type AgentConfig } from './config.ts';
import { AGENT_OPTIONS } from './options.ts';
import { readAgentEnv } from './env.ts';
import { IdentityError } from './identity.ts';
import { createAgentLogger } from './logger.ts';
import { AGENT_VERSION } from './version.ts';

const program = new Command('flotilla-agent')
  .description('Flotilla edge agent: enrolls, receives signed model bundles over MQTT, verifies, smoke-tests and serves them locally')
  .version(AGENT_VERSION)
  .exitOverride()
  .showHelpAfterError();
// Every option is shown, from the same definitions as agent/README.md's table (options.ts).
for (const { flag, env, default: dflt, help } of AGENT_OPTIONS) {
  program.addOption(new Option(`${flag} <value>`, `${help} [env ${env}${dflt ? `; default ${dflt}` : ''}]`));
}

let config: AgentConfig;
try {
  program.parse(process.argv);
  const flags = program.opts<Record<string, string>>();
  const fromEnv = readAgentEnv();
  const from: Record<string, 'flag' | 'env'> = {};
  for (const k of Object.keys(fromEnv)) from[k] = 'env';
  for (const k of Object.keys(flags)) if (flags[k] !== undefined) from[k] = 'flag';
  config = parseAgentConfig({ ...fromEnv, ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) }, from);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  process.stderr.write(`flotilla-agent: ${(err as Error).message}\n`);
  process.exit(2);
}

const logger = createAgentLogger(config.logLevel);
const agent = new Agent(config, logger);
let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  const force = setTimeout(() => process.exit(1), 15_000);
  force.unref();
  agent.stop().then(
    () => process.exit(0),
    (err) => {
      logger.error({ err }, 'stop failed');
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

try {
  await agent.start();
} catch (err) {
  if (stopping) {
    // start() was cut short by a signal (e.g. while waiting for the server): not an error.
  } else {
    const known = err instanceof IdentityError || err instanceof ConfigError || (err as Error).name === 'AgentLockedError';
    if (known) logger.fatal(`flotilla-agent: ${(err as Error).message}`);
    else logger.fatal({ err }, 'agent failed to start');
    await agent.stop().catch(() => {});
    process.exit(known ? 2 : 1);
  }
}
