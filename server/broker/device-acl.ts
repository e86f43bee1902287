// The topic ACL for devices (DESIGN.md): a device publishes only to its own reported/telemetry/stats/
// status/cmd/res topics and subscribes only to its own desired and cmd topics. No wildcards.
import { DEVICE_PUBLISH_CHANNELS, DEVICE_SUBSCRIBE_CHANNELS, deviceTopic } from '../../protocol/topics.ts';

export function devicePublishAllowed(deviceId: string, topic: string): boolean {
  return DEVICE_PUBLISH_CHANNELS.some((ch) => topic === deviceTopic(deviceId, ch));
}

export function deviceSubscribeAllowed(deviceId: string, filter: string): boolean {
  return DEVICE_SUBSCRIBE_CHANNELS.some((ch) => filter === deviceTopic(deviceId, ch));
}
