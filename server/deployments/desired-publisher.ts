// Where signed desired state goes once stored: each device's `desired` topic, retained. With the
// embedded broker the server publishes straight into it (no QoS 1 round trip through its own client
// per device); with an external broker through the server's client, pipelined (a sliding window of
// publishes awaiting their acknowledgement, not one at a time nor in lockstep batches).
import { deviceTopic } from '../../protocol/topics.ts';
import type { Metrics } from '../metrics.ts';
import type { DeviceBus } from '../mqtt/device-bus.ts';
import { PublishOrder } from './publish-order.ts';

/** One device's desired message, serialized once (the bytes stored or built at assignment). */
export interface DesiredPayload {
  deviceId: string;
  /** The manifest's counter: older ones than a device was already sent are dropped (publish-order.ts). */
  counter: number;
  payload: string;
}

export interface DesiredPublisher {
  /** Resolves once every message is retained by the broker (acknowledged by an external one). */
  publish(messages: DesiredPayload[]): Promise<void>;
  /** Forgets revoked devices (publish-order.ts). */
  forget(deviceIds: string[]): void;
  /** Devices whose last counter is remembered to order publishes. */
  remembered(): number;
}

/** Acknowledgements awaited at once from an external broker. */
const EXTERNAL_WINDOW = 1024;

/** What the fan-out needs of the embedded broker (structural, so the web project's type check, which
 * reaches this file through `AppType`, does not pull in aedes' CommonJS typings). */
export interface RetainedSink {
  publishRetained(topic: string, payload: Buffer): Promise<void>;
}

export function embeddedPublisher(broker: RetainedSink, metrics: Metrics): DesiredPublisher {
  const order = new PublishOrder();
  return {
    async publish(messages) {
      // Handed over synchronously, in order: aedes stores a retained message when publish() is called.
      const fresh = messages.filter(({ deviceId, counter }) => order.admit(deviceId, counter));
      await Promise.all(fresh.map(({ deviceId, payload }) => broker.publishRetained(deviceTopic(deviceId, 'desired'), Buffer.from(payload))));
      metrics.mqttMessagesOut.inc({ channel: 'desired' }, fresh.length);
    },
    forget: (ids) => order.forget(ids),
    remembered: () => order.size,
  };
}

export function busPublisher(bus: DeviceBus): DesiredPublisher {
  const order = new PublishOrder();
  return {
    async publish(messages) {
      let next = 0;
      const lane = async () => {
        for (let i = next++; i < messages.length; i = next++) {
          const { deviceId, counter, payload } = messages[i];
          // Checked when this lane takes the message: another publish() may have sent a newer one meanwhile.
          if (!order.admit(deviceId, counter)) continue;
          await bus.publishBytes(deviceTopic(deviceId, 'desired'), Buffer.from(payload), 'desired', { retain: true });
        }
      };
      await Promise.all(Array.from({ length: Math.min(EXTERNAL_WINDOW, messages.length) }, lane));
    },
    forget: (ids) => order.forget(ids),
    remembered: () => order.size,
  };
}
