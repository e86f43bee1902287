// What the broker must learn about a device's credentials as its lifecycle moves: the seam between
// the device routes and whichever broker devices log in to. The embedded broker reads the database
// itself, so only revocation concerns it (the device is kicked); an external Mosquitto keeps its own
// clients, passwords and ACLs, provisioned through its dynamic-security plugin (mosquitto-access.ts).
export interface DeviceBrokerAccess {
  /**
   * A device is being enrolled with this secret. Runs before the enrollment's database transaction
   * (never inside it: the broker may be slow): a throw means nothing is enrolled. A pending device
   * cannot log in yet.
   */
  enrolled(deviceId: string, secret: string, approved: boolean): Promise<void>;
  /**
   * The enrollment's transaction ended: committed, or not (then what enrolled() gave the broker is
   * withdrawn). Never throws: what it cannot withdraw, the broker reconcile deletes (no device row backs it).
   */
  enrollEnded(deviceId: string, committed: boolean): Promise<void>;
  /** The device was approved: it may log in from now on. */
  approved(deviceId: string): Promise<void>;
  /** The device was revoked: its credentials stop working and it is disconnected at once. */
  revoked(deviceId: string): Promise<void>;
}
