// Child process of the reconnect bench: one control plane from FLOTILLA_* variables (fixed ports, so a
// restart comes back where the devices look for it). Reports its own CPU time over IPC — from just
// before start(), so loading the code is not counted — and stops cleanly on SIGTERM, as a real restart.
import { ControlPlane } from '../server/control-plane.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';

const config = loadServerConfig(process.env);
const plane = new ControlPlane(config, createLogger(config.logLevel));
const cpu0 = process.cpuUsage();
const cpuSeconds = () => {
  const u = process.cpuUsage(cpu0);
  return (u.user + u.system) / 1e6;
};
await plane.start();
process.send!({ type: 'ready', cpuSeconds: cpuSeconds() });
process.on('message', (m: { type: string }) => {
  if (m.type === 'cpu') process.send!({ type: 'cpu', cpuSeconds: cpuSeconds() });
});
process.once('SIGTERM', () => {
  void plane.stop().finally(() => process.exit(0));
});
