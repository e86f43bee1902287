// `flotilla broker reconcile`: bring an external Mosquitto's device clients and roles in line with the
// database now (the server also does it at start and every FLOTILLA_BROKER_RECONCILE_S).
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { emit, keyValues, type Output } from '../output.ts';

export function registerBrokerCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const broker = program.command('broker').description("the external Mosquitto's device clients (FLOTILLA_MQTT_ADMIN_USERNAME)");
  broker
    .command('reconcile')
    .description('reconcile the broker with the database now: revoked devices\' clients deleted, lost roles recreated, pending/approved disabled/enabled; devices with no client are listed (their agents put it back when refused)')
    .action(async () => {
      const r = await call(ctx.api().api.v1.broker.reconcile.$post());
      emit(ctx.out(), r, () => {
        const head = keyValues({ enabled: r.enabled, disabled: r.disabled, deleted: r.deleted, 'roles recreated': r.rolesRecreated, 'missing clients': r.missing });
        return r.missing ? `${head}\n\nwithout a client (each gets it back when its agent is next refused): ${r.missingDevices.join(', ')}${r.missing > r.missingDevices.length ? ', …' : ''}` : head;
      });
    });
}
