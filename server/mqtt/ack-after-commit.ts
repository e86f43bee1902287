// Acknowledge a device message to the broker only once it is safe: a replica killed after PUBACK but
// before its ingest batch committed would lose what the broker had handed it. Unacknowledged QoS 1
// messages stay in the replica's persistent session and the broker sends them again when the replica
// reconnects; a resend of something already committed is absorbed by ingest's (device, seq) dedupe.
//
// MQTT.js has no asynchronous manual acknowledgement: `customHandleAcks` and `handleMessage` hold the
// client's whole packet pipeline until they call back (measured: one message per ingest flush). So
// the PUBACK MQTT.js is about to send is intercepted (its private `_sendPacket`, MQTT.js 5.x) and sent
// later, once the message's handler settled, while packet processing goes on. A PUBACK held across a
// reconnect is dropped: the resumed session redelivers that message instead.
import type { MqttClient } from 'mqtt';

type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

export interface AckHolder {
  /** Delays the PUBACK of `packet` (QoS 1) until `done` settles. Call from the 'message' handler. */
  holdUntil(packet: { qos: number; messageId?: number }, done: Promise<unknown>): void;
  /** PUBACKs waiting (for tests and metrics). */
  readonly waiting: number;
}

export function holdAcksUntilDone(client: MqttClient): AckHolder {
  const internal = client as unknown as { _sendPacket: SendPacket };
  if (typeof internal._sendPacket !== 'function') throw new Error('MQTT.js without _sendPacket: ack-after-commit needs updating');
  const send = internal._sendPacket.bind(client);
  const held = new Map<number, Promise<unknown>>();
  let connection = 0;
  let waiting = 0;
  client.on('close', () => {
    connection++;
    held.clear();
  });
  internal._sendPacket = (packet, cb, ...rest) => {
    const done = packet.cmd === 'puback' && packet.messageId !== undefined ? held.get(packet.messageId) : undefined;
    if (!done) return send(packet, cb, ...rest);
    held.delete(packet.messageId!);
    const sentOn = connection;
    waiting++;
    void done
      .catch(() => {})
      .then(() => {
        waiting--;
        if (sentOn === connection && client.connected) send(packet);
      });
    cb?.(); // let MQTT.js read the next packet now
  };
  return {
    holdUntil(packet, done) {
      if (packet.qos === 1 && packet.messageId !== undefined) held.set(packet.messageId, done);
    },
    get waiting() {
      return waiting;
    },
  };
}
