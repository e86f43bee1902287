// Device credentials and ACLs on an external Mosquitto 2, through its dynamic-security plugin.
// Each device gets a client (username = client id = device id, its enrollment secret as password) and
// a role of its own: Mosquitto 2.0.x does not substitute %c/%u in dynamic-security ACLs, so a shared
// role cannot say "your own topics". The role allows exactly what server/broker/device-acl.ts allows
// on the embedded broker: publish to the device's reported/telemetry/stats/status/cmd/res, subscribe
// to its desired and cmd. Pending devices are disabled clients; revocation deletes client and role,
// which makes Mosquitto disconnect the device at once. The server's own client gets the role
// `flotilla-server` (device topics and their shared subscriptions `$share/flotilla/...`).
import mqtt from 'mqtt';
import type { Logger } from 'pino';
import { DEVICE_PUBLISH_CHANNELS, DEVICE_SUBSCRIBE_CHANNELS, deviceTopic, TOPIC_ROOT } from '../../protocol/topics.ts';
import type { Db } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import { ServiceError } from '../errors.ts';
import type { DeviceBrokerAccess } from './device-broker-access.ts';
import { type DynsecAdmin, type DynsecCommand, DynsecError } from './dynsec-admin.ts';

/** Marks the broker clients this control plane owns (reconcile deletes those no device row backs). */
export const DEVICE_CLIENT_TEXTNAME = 'flotilla device';
export const SERVER_ROLE = 'flotilla-server';
/** The shared-subscription group replicas consume device traffic through. */
export const SHARED_GROUP = 'flotilla';
/** Commands per dynamic-security message during a reconcile. */
const CHUNK = 500;
/** Clients per listClients answer (≈ 150 bytes each). */
const LIST_PAGE = 2000;

export function deviceRole(deviceId: string): string {
  return `flotilla-device-${deviceId}`;
}

/** The ACLs of a device's own role (the embedded broker's device-acl.ts, as dynamic-security entries). */
export function deviceAcls(deviceId: string): Array<{ acltype: string; topic: string; allow: true }> {
  return [
    ...DEVICE_PUBLISH_CHANNELS.map((ch) => ({ acltype: 'publishClientSend', topic: deviceTopic(deviceId, ch), allow: true as const })),
    ...DEVICE_SUBSCRIBE_CHANNELS.map((ch) => ({ acltype: 'subscribeLiteral', topic: deviceTopic(deviceId, ch), allow: true as const })),
  ];
}

function serverAcls(): Array<{ acltype: string; topic: string; allow: true }> {
  const all = `${TOPIC_ROOT.split('/').slice(0, 2).join('/')}/#`; // flotilla/v1/#
  return [
    { acltype: 'publishClientSend', topic: all, allow: true },
    { acltype: 'publishClientReceive', topic: all, allow: true },
    { acltype: 'subscribePattern', topic: all, allow: true },
    // Mosquitto checks a shared subscription's ACL against the whole `$share/<group>/<filter>` string.
    { acltype: 'subscribePattern', topic: `$share/${SHARED_GROUP}/${all}`, allow: true },
  ];
}

export interface MosquittoAccessOptions {
  admin: DynsecAdmin;
  db: Db;
  logger: Logger;
  /** The broker URL, for checking the server's own credentials. */
  url: string;
  server: { username: string; password: string };
}

export class MosquittoAccess implements DeviceBrokerAccess {
  /** Devices provisioned whose enrollment has not committed yet: this replica's reconcile leaves their clients alone. */
  private readonly enrolling = new Set<string>();

  constructor(private readonly opts: MosquittoAccessOptions) {}

  private async run(commands: DynsecCommand[], benign?: RegExp, pipelined = false): Promise<void> {
    try {
      const res = pipelined ? await this.opts.admin.queue(commands) : await this.opts.admin.run(commands);
      const bad = res.find((r) => r.error && !benign?.test(r.error));
      if (bad) throw new DynsecError(`dynamic-security ${bad.command}: ${bad.error}`);
    } catch (err) {
      if (err instanceof DynsecError) throw new ServiceError('broker_unavailable', `the MQTT broker did not take the device's credentials: ${err.message}`);
      throw err;
    }
  }

  /** Pipelined: enrollments arriving together share dynamic-security messages. */
  async enrolled(deviceId: string, secret: string, approved: boolean): Promise<void> {
    this.enrolling.add(deviceId);
    try {
      await this.run(
        [
          { command: 'createRole', rolename: deviceRole(deviceId), acls: deviceAcls(deviceId) },
          { command: 'createClient', username: deviceId, clientid: deviceId, password: secret, textname: DEVICE_CLIENT_TEXTNAME, roles: [{ rolename: deviceRole(deviceId) }] },
          ...(approved ? [] : [{ command: 'disableClient', username: deviceId }]),
        ],
        undefined,
        true,
      );
    } catch (err) {
      // Half of it may have been created (or all of it, if only the answer was lost).
      await this.enrollEnded(deviceId, false);
      throw err;
    }
  }

  async enrollEnded(deviceId: string, committed: boolean): Promise<void> {
    try {
      if (!committed) await this.run([{ command: 'deleteClient', username: deviceId }, { command: 'deleteRole', rolename: deviceRole(deviceId) }], /not found/i, true);
    } catch (err) {
      this.opts.logger.warn({ deviceId, err: (err as Error).message }, 'could not withdraw the broker client of an enrollment that did not commit: the broker reconcile deletes it');
    } finally {
      this.enrolling.delete(deviceId);
    }
  }

  async approved(deviceId: string): Promise<void> {
    await this.run([{ command: 'enableClient', username: deviceId }]);
  }

  async revoked(deviceId: string): Promise<void> {
    // Deleting the client disconnects it; "not found" means it is already gone.
    await this.run([{ command: 'deleteClient', username: deviceId }, { command: 'deleteRole', rolename: deviceRole(deviceId) }], /not found/i);
  }

  /**
   * The server's own client and role. An existing client keeps its password unless the server can no
   * longer log in with the configured one: setting a password disconnects every session of that
   * client, i.e. the other replicas.
   */
  async ensureServerClient(): Promise<void> {
    const { username, password } = this.opts.server;
    const res = await this.opts.admin.run([
      { command: 'createRole', rolename: SERVER_ROLE, textname: 'flotilla control plane' },
      ...serverAcls().map((acl) => ({ command: 'addRoleACL', rolename: SERVER_ROLE, ...acl })),
      { command: 'createClient', username, password, textname: 'flotilla control plane', roles: [{ rolename: SERVER_ROLE }] },
    ]);
    const bad = res.find((r) => r.error && !/already exists/i.test(r.error));
    if (bad) throw new DynsecError(`dynamic-security ${bad.command}: ${bad.error}`);
    if (!res.at(-1)?.error) return; // just created with this password
    if (await this.canLogIn(username, password)) return;
    this.opts.logger.warn({ username }, 'the broker refused the configured server password: setting it through dynamic security');
    await this.opts.admin.runOk([
      { command: 'setClientPassword', username, password },
      { command: 'addClientRole', username, rolename: SERVER_ROLE },
    ], /internal error|already/i); // 2.0.x answers "Internal error" for a role the client already has
  }

  private async canLogIn(username: string, password: string): Promise<boolean> {
    try {
      const probe = await mqtt.connectAsync(this.opts.url, { username, password, clientId: `flotilla-probe-${process.pid}`, reconnectPeriod: 0, connectTimeout: 5000 });
      await probe.endAsync();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Puts back a device's lost client (and role) with the secret the device just proved over HTTP
   * (POST /api/v1/devices/{id}/broker-access): the server keeps only a hash of device secrets, and
   * Mosquitto 2.0's dynamic-security API takes plaintext passwords only, so the device is where a lost
   * password comes back from. Idempotent: an existing client gets the password and role again.
   */
  async restore(deviceId: string, secret: string, approved: boolean): Promise<{ client: boolean; role: boolean }> {
    let res;
    try {
      res = await this.opts.admin.run([
        { command: 'createRole', rolename: deviceRole(deviceId), acls: deviceAcls(deviceId) },
        { command: 'createClient', username: deviceId, clientid: deviceId, password: secret, textname: DEVICE_CLIENT_TEXTNAME, roles: [{ rolename: deviceRole(deviceId) }] },
      ]);
    } catch (err) {
      throw new ServiceError('broker_unavailable', `the MQTT broker did not take the device's credentials: ${(err as Error).message}`);
    }
    const bad = res.find((r) => r.error && !/already exists/i.test(r.error));
    if (bad) throw new ServiceError('broker_unavailable', `dynamic-security ${bad.command}: ${bad.error}`);
    const created = { role: !res[0].error, client: !res[1].error };
    // An existing client gets the proven password and its role again. Setting a password disconnects the
    // client's sessions; the device is not connected (it asks because the broker refused it).
    const fix: DynsecCommand[] = created.client ? [] : [{ command: 'setClientPassword', username: deviceId, password: secret }, { command: 'addClientRole', username: deviceId, rolename: deviceRole(deviceId) }];
    await this.run([...fix, { command: approved ? 'enableClient' : 'disableClient', username: deviceId }], /internal error|already/i);
    return created;
  }

  /**
   * Brings the broker in line with the database after the broker or the server was down, or after
   * someone edited its dynamic-security state: revoked devices' clients and roles deleted, pending ones
   * disabled, approved ones enabled, lost roles recreated (and given back to their client), the
   * server's own client and role recreated, clients of devices that no longer exist deleted. A device
   * row with no client cannot be provisioned from here (only the secret's hash is stored): it is
   * counted, and the device's agent puts its client back itself when the broker refuses it (restore()).
   */
  async reconcile(): Promise<ReconcileResult> {
    const { admin, db, logger } = this.opts;
    await this.ensureServerClient();
    // Paged: one answer per page stays far below the broker's max_packet_size (1 MiB in deploy/).
    const clients = new Map<string, { disabled?: boolean; textname?: string; roles?: Array<{ rolename: string }> }>();
    for (let offset = 0; ; offset += LIST_PAGE) {
      const [list] = await admin.runOk([{ command: 'listClients', verbose: true, count: LIST_PAGE, offset }]);
      const page = (list.data?.clients ?? []) as Array<{ username: string; disabled?: boolean; textname?: string; roles?: Array<{ rolename: string }> }>;
      for (const c of page) clients.set(c.username, c);
      if (page.length < LIST_PAGE) break;
    }
    const roles = new Set<string>();
    for (let offset = 0; ; offset += LIST_PAGE) {
      const [list] = await admin.runOk([{ command: 'listRoles', verbose: false, count: LIST_PAGE, offset }]);
      const page = (list.data?.roles ?? []) as Array<string | { rolename: string }>;
      for (const r of page) roles.add(typeof r === 'string' ? r : r.rolename);
      if (page.length < LIST_PAGE) break;
    }
    // Taken before the rows are read: a client listed above whose row is not read below was then either
    // still enrolling (in this set) or its enrollment had failed.
    const enrolling = new Set(this.enrolling);
    const rows = await db.select({ id: devices.id, status: devices.status }).from(devices);
    const known = new Set(rows.map((r) => r.id));
    const commands: DynsecCommand[] = [];
    const out: ReconcileResult = { enabled: 0, disabled: 0, deleted: 0, rolesRecreated: 0, missing: [] };
    const remove = (id: string) => {
      commands.push({ command: 'deleteClient', username: id }, { command: 'deleteRole', rolename: deviceRole(id) });
      out.deleted++;
    };
    for (const row of rows) {
      const c = clients.get(row.id);
      if (!c) {
        if (row.status !== 'revoked') out.missing.push(row.id);
        // A leftover role of a revoked device whose client is already gone.
        else if (roles.has(deviceRole(row.id))) commands.push({ command: 'deleteRole', rolename: deviceRole(row.id) });
        continue;
      }
      if (row.status === 'revoked') {
        remove(row.id);
        continue;
      }
      const role = deviceRole(row.id);
      if (!roles.has(role)) {
        commands.push({ command: 'createRole', rolename: role, acls: deviceAcls(row.id) });
        out.rolesRecreated++;
      }
      if (!roles.has(role) || !c.roles?.some((r) => r.rolename === role)) commands.push({ command: 'addClientRole', username: row.id, rolename: role });
      if (row.status === 'approved' && c.disabled) {
        commands.push({ command: 'enableClient', username: row.id });
        out.enabled++;
      } else if (row.status === 'pending' && !c.disabled) {
        commands.push({ command: 'disableClient', username: row.id });
        out.disabled++;
      }
    }
    // An enrollment provisions its client before writing its row (enroll-service.ts): skip those in flight here.
    for (const [username, c] of clients) if (c.textname === DEVICE_CLIENT_TEXTNAME && !known.has(username) && !enrolling.has(username)) remove(username);
    // 2.0.x answers "Internal error" for addClientRole of a role the client already has.
    for (let i = 0; i < commands.length; i += CHUNK) await admin.runOk(commands.slice(i, i + CHUNK), /not found|internal error|already/i);
    if (out.missing.length) logger.warn({ devices: out.missing.length, first: out.missing.slice(0, 5) }, 'devices without a client on the broker: each gets it back when its agent is next refused (it proves its secret over HTTP)');
    if (out.enabled || out.disabled || out.deleted || out.rolesRecreated) logger.info({ enabled: out.enabled, disabled: out.disabled, deleted: out.deleted, rolesRecreated: out.rolesRecreated }, 'broker clients reconciled with the database');
    return out;
  }
}

export interface ReconcileResult {
  enabled: number;
  disabled: number;
  /** Clients (with their roles) of revoked or unknown devices. */
  deleted: number;
  rolesRecreated: number;
  /** Devices (not revoked) with no client on the broker. */
  missing: string[];
}
