// The agent's only reader of process.env: maps FLOTILLA_AGENT_* variables to config options. Flags
// given on the command line win over these (main.ts); config.ts validates the merged result.
import { OPTION_SOURCES } from './config.ts';

/** Options found in the environment, keyed like the config (values still strings). */
export function readAgentEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, { env: name }] of Object.entries(OPTION_SOURCES)) {
    const value = env[name];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}
