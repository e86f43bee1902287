// HTTP authentication of devices (Basic deviceId:secret): the same check as an MQTT connect, one
// indexed read per request (the hash is fast, and reading the status every time makes a revocation
// take effect at once).
import { verifyDeviceCredentials } from '../devices/device-service.ts';
import type { Db } from '../db/client.ts';

export class DeviceAuthenticator {
  constructor(private readonly db: Db) {}

  async check(deviceId: string, secret: string): Promise<boolean> {
    return (await verifyDeviceCredentials(this.db, deviceId, secret)) === 'ok';
  }

  /** The device an `Authorization: Basic deviceId:secret` header proves, or null (absent, malformed, wrong). */
  async fromHeader(header: string | undefined): Promise<string | null> {
    const basic = /^Basic\s+(\S+)$/i.exec(header ?? '');
    if (!basic) return null;
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0) return null;
    const deviceId = decoded.slice(0, i);
    return (await this.check(deviceId, decoded.slice(i + 1))) ? deviceId : null;
  }
}
