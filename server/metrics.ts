// Prometheus metrics, one registry per control-plane instance (no global singleton: tests run several).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'flotilla_http_requests_total',
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'flotilla_http_request_duration_seconds',
    help: 'HTTP request duration by route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly devicesConnected = new Gauge({
    name: 'flotilla_devices_connected',
    help: 'Devices connected to the embedded broker',
    registers: [this.registry],
  });
  readonly mqttMessagesIn = new Counter({
    name: 'flotilla_mqtt_messages_in_total',
    help: 'MQTT messages received by the server, by channel',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly mqttMessagesOut = new Counter({
    name: 'flotilla_mqtt_messages_out_total',
    help: 'MQTT messages published by the server, by channel',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly mqttDropped = new Counter({
    name: 'flotilla_mqtt_messages_dropped_total',
    help: 'Device messages dropped by the server, by channel and reason',
    labelNames: ['channel', 'reason'] as const,
    registers: [this.registry],
  });
  readonly mqttRefused = new Counter({
    name: 'flotilla_mqtt_refused_total',
    help: 'Broker refusals: bad credentials (auth), too many pending connects (busy), publish or subscribe outside a device\'s own topics',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly mqttLimitDisconnects = new Counter({
    name: 'flotilla_mqtt_limit_disconnects_total',
    help: 'Devices disconnected by the embedded broker\'s limits: oversize packet, or persisting past the rate limit',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  // External Mosquitto: its device clients reconciled with the database (server/broker/broker-reconciler.ts).
  readonly brokerReconciles = new Counter({
    name: 'flotilla_broker_reconcile_runs_total',
    help: 'Reconciles of the broker\'s device clients with the database, by result (ok, error)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly brokerReconcileActions = new Counter({
    name: 'flotilla_broker_reconcile_actions_total',
    help: 'What reconciles changed on the broker: clients enabled, disabled, deleted (revoked or unknown devices), roles recreated',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly brokerClientsMissing = new Gauge({
    name: 'flotilla_broker_clients_missing',
    help: 'Devices (not revoked) with no client on the broker at the last reconcile; each gets it back when its agent proves its secret',
    registers: [this.registry],
  });
  readonly brokerAccessRestored = new Counter({
    name: 'flotilla_broker_access_restored_total',
    help: 'Device clients put back on the broker at the device\'s request (POST /devices/{id}/broker-access), by what was missing (client, role, none)',
    labelNames: ['missing'] as const,
    registers: [this.registry],
  });

  readonly artifactDownloadsIdleClosed = new Counter({
    name: 'flotilla_artifact_downloads_idle_closed_total',
    help: 'Artifact downloads closed because the client took no bytes for FLOTILLA_ARTIFACT_IDLE_TIMEOUT_S (their slot freed)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'flotilla_process_' });
  }
}
