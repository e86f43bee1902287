// The CLI's configuration: FLOTILLA_URL / FLOTILLA_TOKEN, else the file `flotilla login` wrote.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CliError } from './output.ts';

const CliEnv = z.object({
  FLOTILLA_URL: z.string().url().optional(),
  FLOTILLA_TOKEN: z.string().min(1).optional(),
  FLOTILLA_CONFIG_DIR: z.string().optional(),
});

const StoredLogin = z.object({ url: z.string().url(), token: z.string().min(1) });

export interface CliConfig {
  url?: string;
  token?: string;
  configFile: string;
}

export function loadCliConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const parsed = CliEnv.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CliError(`invalid environment: ${String(issue.path[0])}: ${issue.message}; fix or unset it`, 2, 'invalid_environment', { variable: String(issue.path[0]) });
  }
  const e = parsed.data;
  const configFile = path.join(e.FLOTILLA_CONFIG_DIR ?? path.join(homedir(), '.config', 'flotilla'), 'login.json');
  let stored: z.infer<typeof StoredLogin> | undefined;
  if (existsSync(configFile)) {
    const s = StoredLogin.safeParse(JSON.parse(readFileSync(configFile, 'utf8')));
    if (s.success) stored = s.data;
  }
  return { url: e.FLOTILLA_URL ?? stored?.url, token: e.FLOTILLA_TOKEN ?? stored?.token, configFile };
}
