// HTTP authentication of devices (Basic deviceId:secret). scrypt costs ~50 ms, so a successful check
// is remembered briefly by a hash of the secret; the device's status is still read on every request,
// so a revocation takes effect at once.
import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import { verifyDeviceCredentials } from '../devices/device-service.ts';

const TTL_MS = 5 * 60_000;
const MAX_ENTRIES = 100_000;

export class DeviceAuthenticator {
  private readonly verified = new Map<string, number>();

  constructor(private readonly db: Db) {}

  async check(deviceId: string, secret: string): Promise<boolean> {
    const key = `${deviceId}:${createHash('sha256').update(secret).digest('base64')}`;
    const until = this.verified.get(key);
    if (until && until > Date.now()) {
      const row = await this.db.query.devices.findFirst({ columns: { status: true }, where: eq(devices.id, deviceId) });
      return row?.status === 'approved';
    }
    const ok = (await verifyDeviceCredentials(this.db, deviceId, secret)) === 'ok';
    if (ok) {
      if (this.verified.size >= MAX_ENTRIES) this.verified.clear();
      this.verified.set(key, Date.now() + TTL_MS);
    }
    return ok;
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
