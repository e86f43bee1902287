// Watches one device's topics with the server's own MQTT credentials: what the control plane sees of it.
import mqtt, { type MqttClient } from 'mqtt';
import { type Channel, deviceTopic } from '../../protocol/topics.ts';
import type { TestPlane } from './control-plane.ts';

/** Subscribes (QoS 1) to `channels` of `deviceId`; each non-empty message reaches `onMessage` parsed. End the client after the test. */
export async function observeDevice(cp: TestPlane, deviceId: string, channels: Channel[], onMessage: (channel: Channel, msg: any) => void): Promise<MqttClient> {
  const { username, password } = cp.plane.serverCredentials;
  const client = await mqtt.connectAsync(cp.mqttUrl, { username, password, clientId: `observer-${deviceId}-${process.pid}`, reconnectPeriod: 0 });
  const byTopic = new Map(channels.map((c) => [deviceTopic(deviceId, c), c]));
  client.on('message', (topic, payload) => {
    const channel = byTopic.get(topic);
    if (channel && payload.length > 0) onMessage(channel, JSON.parse(payload.toString()));
  });
  await client.subscribeAsync([...byTopic.keys()], { qos: 1 });
  return client;
}
