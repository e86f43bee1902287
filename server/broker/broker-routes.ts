// The broker's device clients over HTTP (issue 16, external Mosquitto):
// - POST /api/v1/broker/reconcile (admin token): reconcile now, answer what changed;
// - POST /api/v1/devices/{id}/broker-access (device Basic deviceId:secret): a device the broker refused
//   puts its lost client back by proving its secret (mosquitto-access.ts restore()), and its stored
//   retained desired state is published again.
// With the embedded broker there is nothing to provision: the broker reads the database at each CONNECT.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db } from '../db/client.ts';
import { verifyDeviceCredentials } from '../devices/device-service.ts';
import { Conflict, Forbidden, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import type { Metrics } from '../metrics.ts';
import type { BrokerReconciler } from './broker-reconciler.ts';
import type { MosquittoAccess } from './mosquitto-access.ts';

const NOT_MOSQUITTO = 'the control plane provisions no broker clients here (embedded broker, or an external broker without FLOTILLA_MQTT_ADMIN_USERNAME): nothing to reconcile';

export function brokerRoutes(deps: { db: Db; reconciler?: BrokerReconciler }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin'));
  return app.openapi(
    createRoute({
      method: 'post',
      path: '/reconcile',
      summary: 'Reconcile the external Mosquitto\'s device clients and roles with the database now (admin)',
      responses: {
        200: json(
          z.object({
            enabled: z.number(),
            disabled: z.number(),
            deleted: z.number().openapi({ description: 'clients (and roles) of revoked or unknown devices' }),
            rolesRecreated: z.number(),
            missing: z.number().openapi({ description: 'devices with no client on the broker: each gets it back when its agent is next refused' }),
            missingDevices: z.array(z.string()).openapi({ description: 'the first 100 of them' }),
          }),
          'What the reconcile changed',
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      if (!deps.reconciler) throw Conflict(NOT_MOSQUITTO);
      const r = await deps.reconciler.run();
      await recordAudit(deps.db, actorOf(c), 'broker.reconcile', 'broker', { enabled: r.enabled, disabled: r.disabled, deleted: r.deleted, rolesRecreated: r.rolesRecreated, missing: r.missing.length });
      return c.json({ enabled: r.enabled, disabled: r.disabled, deleted: r.deleted, rolesRecreated: r.rolesRecreated, missing: r.missing.length, missingDevices: r.missing.slice(0, 100) }, 200);
    },
  );
}

export function deviceBrokerAccessRoutes(deps: { db: Db; access?: MosquittoAccess; metrics: Metrics; desired: Pick<DesiredState, 'publish'> }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  return app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/broker-access',
      summary: 'A device puts back its lost client on the external Mosquitto (device HTTP Basic auth; its agent calls this when the broker refuses it)',
      security: [],
      request: { params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }) },
      responses: {
        200: json(z.object({ broker: z.enum(['mosquitto', 'none']), createdClient: z.boolean(), createdRole: z.boolean() }), 'Client and role in place ("none": this control plane provisions no broker clients)'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const basic = /^Basic\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
      const decoded = basic ? Buffer.from(basic[1], 'base64').toString('utf8') : '';
      const i = decoded.indexOf(':');
      const [deviceId, secret] = i > 0 ? [decoded.slice(0, i), decoded.slice(i + 1)] : ['', ''];
      // Pending devices prove their secret too: their client comes back disabled.
      const verdict = deviceId ? await verifyDeviceCredentials(deps.db, deviceId, secret) : 'unknown';
      if (verdict !== 'ok' && verdict !== 'pending') throw new ServiceError('unauthorized', 'unknown or revoked device, or wrong secret (HTTP Basic deviceId:secret)');
      if (deviceId !== id) throw Forbidden('a device may only restore its own broker access');
      if (!deps.access) return c.json({ broker: 'none' as const, createdClient: false, createdRole: false }, 200);
      const created = await deps.access.restore(id, secret, verdict === 'ok');
      deps.metrics.brokerAccessRestored.inc({ missing: created.client ? 'client' : created.role ? 'role' : 'none' });
      // A broker that lost the device's client may have lost its retained `desired` too (restarted
      // without persistence): publish the stored bytes again (idempotent; nothing if none is stored).
      // A 503 if that fails: the agent asks again soon, and the next answer publishes again.
      await deps.desired.publish([id]).catch((err: Error) => {
        throw new ServiceError('broker_unavailable', `the device's broker login is back, but its desired state could not be published again: ${err.message}`);
      });
      return c.json({ broker: 'mosquitto' as const, createdClient: created.client, createdRole: created.role }, 200);
    },
  );
}
