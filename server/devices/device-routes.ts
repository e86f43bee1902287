// /api/v1/devices: list by selector, show, label, approve, revoke (revocation kicks the device off the broker).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { DeviceBrokerAccess } from '../broker/device-broker-access.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { MAX_LABELS } from '../http/bounds.ts';
import { errorResponses, json, LabelKey, Labels, page, Pagination } from '../http/schemas.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { COMMANDS } from '../../protocol/messages/command.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { rollbackDevice } from '../deployments/rollback.ts';
import { trustAnnotations } from '../deployments/stale-desired.ts';
import type { DeviceCommands } from './device-commands.ts';
import { approveDevice, deviceDetail, getDevice, listDevices, revokeDevice, updateLabels } from './device-service.ts';

export const Device = z
  .object({
    id: z.string(),
    name: z.string().nullable(),
    status: z.enum(['pending', 'approved', 'revoked']),
    labels: z.record(z.string(), z.string()),
    facts: z.record(z.string(), z.unknown()),
    enrollTokenId: z.string().nullable(),
    enrolledAt: z.string(),
    approvedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    online: z.boolean(),
    lastSeen: z.string().nullable(),
    updateState: z.string().nullable(),
    reported: z.unknown().nullable(),
    /** Whether the reported active bundle is one this server knows (false e.g. after a restore from an older backup); null when none is active. */
    activeBundleKnown: z.boolean().nullable().optional(),
    /** Set while the active bundle has differed from the desired one for longer than FLOTILLA_DESIRED_STALE_AFTER_S. */
    desiredStale: z.object({ since: z.string(), republishedAt: z.string() }).nullable().optional(),
  })
  .openapi('Device');

const DeviceDetail = Device.extend({
  desired: z.object({ bundleId: z.string(), counter: z.number(), deploymentId: z.string().nullable(), cohort: z.string().nullable(), expiresAt: z.string(), updatedAt: z.string() }).nullable(),
}).openapi('DeviceDetail');

const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

export interface DeviceRoutesDeps {
  db: Db;
  /** Drops the device's live broker connection (revocation takes effect at once). */
  disconnectDevice(id: string): Promise<void>;
  brokerAccess: DeviceBrokerAccess;
  /** A device became approved or was relabelled: it may now belong to a cohort with a deployment. */
  onDeviceChanged(id: string): Promise<void>;
  commands: DeviceCommands;
  desired: DesiredState;
}

const Rollback = z
  .object({ deploymentId: z.string(), deviceId: z.string(), from: z.string(), to: z.string(), counter: z.number() })
  .openapi('DeviceRollback');

export function deviceRoutes(deps: DeviceRoutesDeps) {
  const { db } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('devices:write'));
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List devices, optionally filtered by a label selector and status',
        request: { query: Pagination.extend({ selector: z.string().max(4096).optional(), status: z.enum(['pending', 'approved', 'revoked']).optional() }) },
        responses: { 200: json(z.object({ devices: z.array(Device) }), 'Devices'), ...errorResponses },
      }),
      async (c) => {
        const list = page(await listDevices(db, c.req.valid('query')), c.req.valid('query'));
        const notes = await trustAnnotations(db, list);
        return c.json({ devices: list.map((d) => ({ ...d, ...notes.get(d.id) })) }, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}',
        summary: 'Show a device: labels, facts, presence, desired and reported (active bundle, update state)',
        request: { params: IdParam },
        responses: { 200: json(DeviceDetail, 'Device'), ...errorResponses },
      }),
      async (c) => {
        const d = await deviceDetail(db, c.req.valid('param').id);
        return c.json({ ...d, ...(await trustAnnotations(db, [d])).get(d.id) }, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'patch',
        path: '/{id}/labels',
        summary: 'Set or remove labels',
        request: { params: IdParam, body: { content: { 'application/json': { schema: z.object({ set: Labels.default({}), remove: z.array(LabelKey).max(MAX_LABELS).default([]) }) } } } },
        responses: { 200: json(Device, 'Device'), ...errorResponses },
      }),
      async (c) => {
        const body = c.req.valid('json');
        const view = await updateLabels(db, c.req.valid('param').id, body.set, body.remove, actorOf(c));
        await deps.onDeviceChanged(view.id);
        return c.json(view, 200);
      },
    )
    .openapi(
      createRoute({ method: 'post', path: '/{id}/approve', summary: 'Approve a pending device', request: { params: IdParam }, responses: { 200: json(Device, 'Device'), ...errorResponses } }),
      async (c) => {
        const view = await approveDevice(db, c.req.valid('param').id, actorOf(c));
        await deps.brokerAccess.approved(view.id); // idempotent: approving again retries a broker that was away
        await deps.onDeviceChanged(view.id);
        return c.json(view, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{id}/revoke',
        summary: 'Revoke a device: its credentials stop working and it is disconnected at once',
        request: { params: IdParam },
        responses: { 200: json(Device, 'Device'), ...errorResponses },
      }),
      async (c) => {
        const view = await revokeDevice(db, c.req.valid('param').id, actorOf(c));
        deps.desired.forget([view.id]);
        await deps.disconnectDevice(view.id);
        return c.json(view, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{id}/rollback',
        summary: 'Roll a device back to the bundle it was given before: a new signed manifest with the next counter, audited',
        description: 'The device installs it through the normal verified update path; the rollback is recorded as a device deployment.',
        request: { params: IdParam, body: { content: { 'application/json': { schema: z.object({ reason: z.string().max(500).optional() }) } }, required: false } },
        responses: { 200: json(Rollback, 'Signed and published'), ...errorResponses },
      }),
      async (c) => {
        const body = (await c.req.json().catch(() => ({}))) as { reason?: unknown };
        const reason = typeof body?.reason === 'string' ? body.reason.slice(0, 500) : undefined;
        return c.json(await rollbackDevice(db, deps.desired, c.req.valid('param').id, actorOf(c), reason), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{id}/commands',
        summary: 'Send a command (ping, report) to an online device and wait for its answer; `rollback` is the signed rollback (as POST /devices/{id}/rollback)',
        request: {
          params: IdParam,
          body: {
            content: {
              'application/json': {
                schema: z.object({ command: z.enum(COMMANDS), args: z.record(z.string(), z.unknown()).default({}), timeoutMs: z.number().int().min(100).max(120_000).default(10_000) }),
              },
            },
          },
        },
        responses: {
          200: json(z.object({ id: z.string(), status: z.enum(['ok', 'error']), data: z.unknown().optional(), error: z.object({ code: z.string(), message: z.string() }).optional() }), 'The device answered'),
          ...errorResponses,
        },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        const body = c.req.valid('json');
        await getDevice(db, id); // an unknown device is a 404 before anything is audited
        if (body.command === 'rollback') {
          // Not an MQTT command any more (devices refuse it unsigned): the signed rollback, answered in the command shape.
          const r = await rollbackDevice(db, deps.desired, id, actorOf(c));
          return c.json({ id: r.deploymentId, status: 'ok' as const, data: r }, 200);
        }
        if (body.command !== 'ping' && body.command !== 'report') await recordAudit(db, actorOf(c), `device.command.${body.command}`, id, body.args);
        const res = await deps.commands.send(id, body.command, body.args, body.timeoutMs);
        return c.json(res.status === 'ok' ? { id: res.id, status: res.status, data: res.data } : { id: res.id, status: res.status, error: res.error }, 200);
      },
    );
}
