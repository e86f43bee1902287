// Desired state reaches the broker in counter order per device. Several paths publish a device's
// desired state after their own transaction commits (a deployment's signed bytes, a rollout tick, an
// abort's rollback, the stale-state republish, a re-sign), and each awaits between its commit and its
// publish: two of them can commit in one order and reach the broker in the other. The broker keeps the
// last retained message and an agent refuses a counter below one it holds, so an older manifest landing
// last would leave the retained state behind the stored row (a reconnecting device gets the old one).
// The gate remembers the highest counter handed to the broker per device and drops anything older; an
// equal counter (the same signed bytes again: a republish, a restart) passes. Per process: replicas
// each publish what they committed, and the newer commit's publish comes after its own commit.
// Bounded by the devices that can still be published to: a revoked device (revocation is final: it
// enrolls again under a new id) is forgotten, and nothing publishes its desired state after that
// (stored-desired.ts and re-signs skip revoked devices), so its entry is not needed to order anything.

export class PublishOrder {
  private readonly handed = new Map<string, number>();

  /** True when `counter` is not older than what was handed over for the device (and records it): call
   * right before handing the message to the broker, with no await between. */
  admit(deviceId: string, counter: number): boolean {
    const last = this.handed.get(deviceId);
    if (last !== undefined && counter < last) return false;
    this.handed.set(deviceId, counter);
    return true;
  }

  /** Drops revoked devices' entries. */
  forget(deviceIds: string[]): void {
    for (const id of deviceIds) this.handed.delete(id);
  }

  /** Devices remembered. */
  get size(): number {
    return this.handed.size;
  }
}
