// The agent's options, defined once: the flag, the variable, the default as people read it and what
// it does. `flotilla-agent --help` (main.ts) and the option table in agent/README.md
// (`npm run docs:agent-options`) are both generated from this list; test/agent-options.test.ts checks
// that they agree. The values themselves are validated by config.ts (zod).

export interface AgentOption {
  /** Key in the parsed configuration (config.ts). */
  key: string;
  flag: string;
  env: string;
  /** The default as shown to people ('' for none). */
  default: string;
  help: string;
}

const o = (key: string, flag: string, dflt: string, help: string): AgentOption => ({ key, flag, env: `FLOTILLA_AGENT_${flag.slice(2).replace(/-/g, '_').toUpperCase()}`, default: dflt, help });

export const AGENT_OPTIONS = [
  o('server', '--server', '', 'control plane URL (first enrollment only)'),
  o('enrollToken', '--enroll-token', '', 'enrollment token (first start only)'),
  o('name', '--name', 'hostname', 'device name sent at enrollment'),
  o('dataDir', '--data-dir', './agent-data', 'state directory (identity, bundles, outbox; see "Data directory")'),
  o('apiHost', '--api-host', '127.0.0.1', 'local inference API host'),
  o('apiPort', '--api-port', '8481', 'local inference API port'),
  o('apiSocket', '--api-socket', '', 'also serve the local API on this Unix socket (same routes; for clients on the device: ≈ 40 µs less a request than TCP; access follows the file and its folder permissions)'),
  o('trustRoot', '--trust-root', 'TOFU', 'root public key to pin: base64, or a file with it or {keyid, publicKey}'),
  o('ca', '--ca', 'from enrollment', "PEM file of the CA the server's HTTPS and MQTT certificates must chain to; pinned in the identity"),
  o('artifactUrl', '--artifact-url', 'from enrollment', 'artifact base URL (a mirror or CDN)'),
  o('logLevel', '--log-level', 'info', 'fatal|error|warn|info|debug|trace|silent'),
  o('reconnectMinMs', '--reconnect-min-ms', '1000', 'MQTT/enrollment backoff window at first: full jitter, every delay uniform in [0, window]'),
  o('reconnectMaxMs', '--reconnect-max-ms', '15000', 'largest backoff window (it doubles from min to max; a restarted control plane sees its fleet spread over ≤ max)'),
  o('reconnectProbeMaxMs', '--reconnect-probe-max-ms', '4000', 'largest MQTT backoff window while the broker refuses TCP connections (restarting): the fleet is back within about this long after it listens'),
  o('mqttConnectTimeoutMs', '--mqtt-connect-timeout-ms', '30000', 'one MQTT connect attempt (TCP handshake to CONNACK) is given up after this long; a busy broker answers in turn, so a short timeout only re-queues the device'),
  o('probationMs', '--probation-ms', '60000', 'probation after an activation ends after this long…'),
  o('probationRequests', '--probation-requests', '200', '…or after this many inferences, whichever comes first'),
  o('probationMaxErrorRate', '--probation-max-error-rate', '0.2', 'roll back when this share of inferences failed in probation…'),
  o('probationMinRequests', '--probation-min-requests', '5', '…after at least this many inferences'),
  o('downloadRetries', '--download-retries', '5', 'download attempts per file after the first that failed otherwise than by a busy or unreachable server (an HTTP 500, a full disk); a refusal (401, 403, 404) fails at once, and no answer (refused, reset, timed out) or an overloaded one (429, 502, 503, 504) is retried with backoff until the update\'s time bound'),
  o('downloadAnswerTimeoutMs', '--download-answer-timeout-ms', '120000', "a download attempt whose answer (status and headers) has not come after this long is given up and retried; a starved server answers in arrival order, so a short wait only loses the device its place"),
  o('downloadSplayMs', '--download-splay-ms', '0', "after accepting a verified desired state, wait a random delay in [0, this) before downloading (at most half of --update-timeout-ms), so a fleet told at once does not fetch at once; reported as `downloading` with `downloadWaitUntil` (/v1/status: phase `waiting`), cancelled by a newer desired state; 0: download at once"),
  o('downloadIdleTimeoutMs', '--download-idle-timeout-ms', '30000', 'a download attempt with no bytes for this long, once its answer came, is aborted and resumed'),
  o('updateTimeoutMs', '--update-timeout-ms', '1800000', 'bound of a whole update, download included (30 min)'),
  o('stepTimeoutMs', '--step-timeout-ms', '120000', 'bound of loading + smoke-testing a staged model, and of activation'),
  o('telemetryIntervalS', '--telemetry-interval-s', 'from the manifest, else 10', "telemetry interval in seconds: a local override of the server's agentConfig"),
  o('statsWindowS', '--stats-window-s', 'from the manifest, else 60', "stats window in seconds: a local override of the server's agentConfig"),
  o('stats', '--stats', 'on', 'input/output statistics on|off (telemetry always runs)'),
  o('inferenceThread', '--inference-thread', 'auto', "where models run: auto (each model by its measured run time: starts in a worker thread, moves to the agent's thread when its runs take under 0.2 ms), worker (always a thread of their own) or main (always the agent's thread: no thread hand-offs, ≈ 0.1–0.15 ms less a request, but a run blocks the agent while it lasts)"),
  o('outboxMaxBytes', '--outbox-max-bytes', '52428800', 'bound of the on-disk store-and-forward queue (50 MiB; the oldest go first)'),
  o('sampleOutboxMaxBytes', '--sample-outbox-max-bytes', '67108864', 'bound of the captured sample batches waiting for upload (64 MiB)'),
] as const satisfies readonly AgentOption[];

/** The option table of agent/README.md (between its agent-options markers). */
export function optionsMarkdown(): string {
  const code = (s: string) => (s ? `\`${s}\`` : '');
  return [
    '| flag | variable | default | |',
    '| --- | --- | --- | --- |',
    ...AGENT_OPTIONS.map((x) => `| ${code(x.flag)} | ${code(x.env)} | ${/^[\d./]|^info$|^on$|^127/.test(x.default) ? code(x.default) : x.default} | ${x.help.replace(/\|/g, '\\|')} |`),
  ].join('\n');
}
