// Commands to devices (ping, report: harmless ones; a rollback is a signed manifest, see deployments/rollback.ts): published on the device's `cmd` topic with an id and an
// expiry, answered on `cmd/res` with the same id. The caller waits, bounded, for the answer.
import { randomBytes } from 'node:crypto';
import type { CommandRequest, CommandResponse } from '../../protocol/messages/command.ts';
import type { Db } from '../db/client.ts';
import { Conflict, ServiceError } from '../errors.ts';
import type { DeviceBus } from '../mqtt/device-bus.ts';
import { getDevice } from './device-service.ts';

interface Pending {
  deviceId: string;
  resolve(res: CommandResponse): void;
  timer: NodeJS.Timeout;
}

export class DeviceCommands {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly db: Db,
    private readonly bus: DeviceBus,
  ) {}

  /** The `cmd/res` handler: settles the waiting call; unknown or foreign ids are ignored. */
  onResponse(deviceId: string, res: CommandResponse): void {
    const p = this.pending.get(res.id);
    if (!p || p.deviceId !== deviceId) return; // a late answer, or a device answering for another
    this.pending.delete(res.id);
    clearTimeout(p.timer);
    p.resolve(res);
  }

  async send(deviceId: string, command: CommandRequest['command'], args: Record<string, unknown>, timeoutMs: number): Promise<CommandResponse> {
    const device = await getDevice(this.db, deviceId);
    if (device.status !== 'approved') throw Conflict(`device ${deviceId} is ${device.status}`);
    if (!device.online) throw Conflict(`device ${deviceId} is offline; commands are not queued for offline devices`);
    const id = `cmd_${randomBytes(8).toString('hex')}`;
    const answer = new Promise<CommandResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ServiceError('device_timeout', `device ${deviceId} did not answer "${command}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { deviceId, resolve, timer });
    });
    const request: CommandRequest = { v: 1, id, command, args, expiresAt: new Date(Date.now() + timeoutMs).toISOString() };
    try {
      await this.bus.publish(deviceId, 'cmd', request);
    } catch (err) {
      const p = this.pending.get(id);
      if (p) clearTimeout(p.timer);
      this.pending.delete(id);
      throw err;
    }
    return answer;
  }

  /** Fails every waiting call (server stopping). */
  stop(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({ v: 1, id, status: 'error', error: { code: 'SERVER_STOPPING', message: 'the server stopped before the device answered' } });
    }
    this.pending.clear();
  }
}
