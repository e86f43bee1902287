// `npm start`: runs the control plane until SIGINT/SIGTERM.
import { ADMIN_TOKEN_FILE } from './bootstrap-admin.ts';
import { ControlPlane } from './control-plane.ts';
import { loadServerConfig } from './env.ts';

let config;
try {
  config = loadServerConfig();
} catch (err) {
  console.error(`flotilla: ${(err as Error).message}`);
  process.exit(2);
}
const plane = new ControlPlane(config);
try {
  await plane.start();
} catch (err) {
  plane.logger.fatal({ err }, 'control plane failed to start');
  process.exit(1);
}
if (plane.adminToken) {
  process.stdout.write(
    `\nFirst start: created an admin API token (stored in ${config.dataDir}/${ADMIN_TOKEN_FILE}, mode 0600). It is shown only once:\n\n  ${plane.adminToken}\n\n` +
      `Use it with: export FLOTILLA_URL=http://127.0.0.1:${plane.httpPort} FLOTILLA_TOKEN=${plane.adminToken}\n\n`,
  );
}
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    plane.logger.info({ signal }, 'stopping');
    plane.stop().then(() => process.exit(0), () => process.exit(1));
  });
}
