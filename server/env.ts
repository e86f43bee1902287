// The control plane's configuration: parsed once from FLOTILLA_* variables; nothing else reads process.env.
import path from 'node:path';
import { z } from 'zod';

const ServerEnv = z.object({
  FLOTILLA_HTTP_HOST: z.string().default('0.0.0.0'),
  FLOTILLA_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Port of the embedded MQTT broker (ignored when FLOTILLA_MQTT_URL points at an external broker). */
  FLOTILLA_MQTT_PORT: z.coerce.number().int().min(0).max(65535).default(1883),
  FLOTILLA_MQTT_HOST: z.string().default('0.0.0.0'),
  /** External broker; when unset the server embeds aedes. */
  FLOTILLA_MQTT_URL: z.string().url().optional(),
  /** Broker URL handed to devices at enrollment (defaults to the embedded broker on this host). */
  FLOTILLA_PUBLIC_MQTT_URL: z.string().url().optional(),
  /** Server URL handed to devices for artifact downloads (defaults to the request's origin). */
  FLOTILLA_PUBLIC_URL: z.string().url().optional(),
  FLOTILLA_DATA_DIR: z.string().default('./data'),
  FLOTILLA_DB_URL: z.string().optional(),
  FLOTILLA_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(2 * 1024 ** 3),
  FLOTILLA_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface ServerConfig {
  httpHost: string;
  httpPort: number;
  mqttHost: string;
  mqttPort: number;
  externalMqttUrl?: string;
  publicMqttUrl?: string;
  publicUrl?: string;
  dataDir: string;
  dbUrl: string;
  maxUploadBytes: number;
  logLevel: z.infer<typeof ServerEnv>['FLOTILLA_LOG_LEVEL'];
}

/** Parses the environment; throws one line naming the bad variable. */
export function loadServerConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const parsed = ServerEnv.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid environment: ${String(issue.path[0])}: ${issue.message}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.FLOTILLA_DATA_DIR);
  return {
    httpHost: e.FLOTILLA_HTTP_HOST,
    httpPort: e.FLOTILLA_HTTP_PORT,
    mqttHost: e.FLOTILLA_MQTT_HOST,
    mqttPort: e.FLOTILLA_MQTT_PORT,
    externalMqttUrl: e.FLOTILLA_MQTT_URL,
    publicMqttUrl: e.FLOTILLA_PUBLIC_MQTT_URL,
    publicUrl: e.FLOTILLA_PUBLIC_URL,
    dataDir,
    dbUrl: e.FLOTILLA_DB_URL ?? `file:${path.join(dataDir, 'flotilla.db')}`,
    maxUploadBytes: e.FLOTILLA_MAX_UPLOAD_BYTES,
    logLevel: e.FLOTILLA_LOG_LEVEL,
  };
}
