// What the embedded broker offers the server's device bus inside one process: device messages handed
// over as they are published, without the server being an MQTT client of its own broker over loopback
// TCP (each message serialized and written by aedes, parsed again by MQTT.js and acknowledged back).
export interface BrokerMessage {
  topic: string;
  payload: Buffer;
}

export interface InProcessBroker {
  /** Calls `deliver` with every message published on `filter` from now on, in publish order; the result unsubscribes. */
  subscribe(filter: string, deliver: (message: BrokerMessage) => void): Promise<() => Promise<void>>;
  /** The retained messages stored now on any of `filters`. */
  retained(filters: string[]): Promise<BrokerMessage[]>;
  /** Publishes as the broker itself (QoS 1, no authorization); resolves once handed to every subscriber. */
  publish(topic: string, payload: Buffer, opts?: { retain?: boolean }): Promise<void>;
}
