// `flotilla enroll-tokens|devices|cohorts ...`: the operator's commands.
import { InvalidArgumentError, type Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, parseDuration, parsePairs, table, type Output } from '../output.ts';
import { watch } from '../watch.ts';

const collect = (v: string, prev: string[]) => [...prev, v];
const DEVICE_COLUMNS = ['id', 'name', 'status', 'online', 'updateState', 'labels', 'lastSeen'];

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer (1, 2, …)');
  return n;
}

export function registerFleetCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const et = program.command('enroll-tokens').description('tokens devices enroll with');
  et.command('create')
    .description('create an enrollment token (shown once)')
    .option('--labels <k=v,...>', 'labels every device enrolled with it gets', collect, [])
    .option('--ttl <duration>', 'lifetime, e.g. 24h')
    .option('--max-uses <n>', 'how many devices may use it', positiveInt)
    .option('--manual-approve', 'devices stay pending until `flotilla devices approve`')
    .action(async (o: { labels: string[]; ttl?: string; maxUses?: number; manualApprove?: boolean }) => {
      const res = await call(
        ctx.api().api.v1['enroll-tokens'].$post({
          json: { labels: parsePairs(o.labels, 'label'), ttlSeconds: o.ttl ? parseDuration(o.ttl) : undefined, maxUses: o.maxUses, autoApprove: !o.manualApprove },
        }),
      );
      emit(ctx.out(), res, () => `${keyValues({ id: res.id, labels: res.labels, expiresAt: res.expiresAt, maxUses: res.maxUses, autoApprove: res.autoApprove })}\n\ntoken (shown once): ${res.token}`);
    });
  et.command('ls')
    .description('list enrollment tokens')
    .action(async () => {
      const res = await call(ctx.api().api.v1['enroll-tokens'].$get({ query: {} }));
      emit(ctx.out(), res, () => table(res.tokens, ['id', 'labels', 'autoApprove', 'uses', 'maxUses', 'expiresAt', 'revokedAt']));
    });
  et.command('revoke <id>')
    .description('revoke an enrollment token')
    .action(async (id: string) => {
      await call(ctx.api().api.v1['enroll-tokens'][':id'].$delete({ param: { id } }));
      emit(ctx.out(), { revoked: id }, () => `revoked ${id}`);
    });

  const devices = program.command('devices').description('enrolled devices');
  devices
    .command('ls')
    .description('list devices')
    .option('--selector <selector>', "label selector, e.g. 'site=berlin,hw in (rpi4,jetson)'")
    .option('--status <status>', 'pending | approved | revoked')
    .option('--watch', 'refresh in place until Ctrl-C')
    .option('--interval <duration>', 'refresh interval with --watch', '2s')
    .action(async (o: { selector?: string; status?: 'pending' | 'approved' | 'revoked'; watch?: boolean; interval: string }) => {
      const frame = async () => {
        const res = await call(ctx.api().api.v1.devices.$get({ query: { selector: o.selector, status: o.status } }));
        // Stale desired state and bundles unknown to this server are flagged in the listing.
        const rows = res.devices.map((d) => ({ ...d, flags: [d.desiredStale ? 'stale' : '', d.activeBundleKnown === false ? 'unknown-bundle' : ''].filter(Boolean).join(',') }));
        return { data: res, human: () => table(rows, [...DEVICE_COLUMNS, 'flags']) };
      };
      if (o.watch) return watch(ctx.out(), parseDuration(o.interval), frame);
      const f = await frame();
      emit(ctx.out(), f.data, f.human);
    });
  devices
    .command('show <id>')
    .description('show one device')
    .action(async (id: string) => {
      const d = await call(ctx.api().api.v1.devices[':id'].$get({ param: { id } }));
      const rep = d.reported as { active?: { bundleId: string; model: { name: string; version: number }; counter: number } | null; lastError?: { code: string; message: string } | null } | null;
      emit(ctx.out(), d, () =>
        keyValues({
          id: d.id,
          name: d.name,
          status: d.status,
          online: d.online,
          lastSeen: d.lastSeen,
          labels: d.labels,
          facts: d.facts,
          active: rep?.active ? `${rep.active.bundleId} (${rep.active.model.name}@${rep.active.model.version}, counter ${rep.active.counter})` : null,
          desired: d.desired ? `${d.desired.bundleId} (counter ${d.desired.counter}, expires ${d.desired.expiresAt})` : null,
          updateState: d.updateState,
          lastError: rep?.lastError ? `${rep.lastError.code}: ${rep.lastError.message}` : null,
          ...(d.desiredStale ? { stale: `active differs from desired since ${d.desiredStale.since} (desired state re-published ${d.desiredStale.republishedAt})` } : {}),
          ...(d.activeBundleKnown === false ? { warning: 'the active bundle is unknown to this server (restored from an older backup?); deploy to bring the device back under management' } : {}),
        }),
      );
    });
  devices
    .command('label <id> [pairs...]')
    .description('set labels (k=v); --remove k to delete one')
    .option('--remove <key>', 'label to remove, repeatable', collect, [])
    .action(async (id: string, pairs: string[], o: { remove: string[] }) => {
      const d = await call(ctx.api().api.v1.devices[':id'].labels.$patch({ param: { id }, json: { set: parsePairs(pairs, 'label'), remove: o.remove } }));
      emit(ctx.out(), d, () => `${d.id} labels: ${Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '(none)'}`);
    });
  devices
    .command('approve <id>')
    .description('approve a pending device')
    .action(async (id: string) => {
      const d = await call(ctx.api().api.v1.devices[':id'].approve.$post({ param: { id } }));
      emit(ctx.out(), d, () => `${d.id} is ${d.status}`);
    });
  devices
    .command('revoke <id>')
    .description('revoke a device: credentials stop working, it is disconnected at once')
    .action(async (id: string) => {
      const d = await call(ctx.api().api.v1.devices[':id'].revoke.$post({ param: { id } }));
      emit(ctx.out(), d, () => `${d.id} is ${d.status}`);
    });

  devices
    .command('rollback <id>')
    .description('sign a new manifest (next counter) for the bundle the device had before; it installs it like any update (audited)')
    .option('--reason <text>', 'recorded in the audit log')
    .action(async (id: string, o: { reason?: string }) => {
      const res = await call(ctx.api().api.v1.devices[':id'].rollback.$post({ param: { id }, json: { reason: o.reason } }));
      emit(ctx.out(), res, () => `${id}: rolling back from ${res.from} to ${res.to} (signed manifest, counter ${res.counter}, deployment ${res.deploymentId})`);
    });

  for (const [command, description] of [
    ['ping', 'check that an online device answers commands'],
    ['report', 'ask an online device to publish its reported state again'],
  ] as const) {
    devices
      .command(`${command} <id>`)
      .description(description)
      .option('--timeout <duration>', 'how long to wait for the answer', '10s')
      .action(async (id: string, o: { timeout: string }) => {
        const res = await call(ctx.api().api.v1.devices[':id'].commands.$post({ param: { id }, json: { command, timeoutMs: parseDuration(o.timeout) * 1000 } }));
        if (res.status === 'error') throw new CliError(`${id} refused ${command}: ${res.error?.message ?? 'unknown error'} [${res.error?.code ?? 'error'}]`);
        emit(ctx.out(), res, () => `${id}: ${command} ok${res.data === undefined ? '' : ' ' + JSON.stringify(res.data)}`);
      });
  }

  const cohorts = program.command('cohorts').description('named device selectors');
  cohorts
    .command('create <name>')
    .description('create a cohort')
    .requiredOption('--selector <selector>', "e.g. 'site=berlin,hw in (rpi4,jetson),!quarantine'")
    .option('--description <text>')
    .action(async (name: string, o: { selector: string; description?: string }) => {
      const c = await call(ctx.api().api.v1.cohorts.$post({ json: { name, selector: o.selector, description: o.description } }));
      emit(ctx.out(), c, () => `created cohort ${c.name} (${c.selector})`);
    });
  cohorts
    .command('ls')
    .description('list cohorts')
    .action(async () => {
      const res = await call(ctx.api().api.v1.cohorts.$get({ query: {} }));
      emit(ctx.out(), res, () => table(res.cohorts, ['name', 'selector', 'preferVariant', 'description', 'createdAt']));
    });
  cohorts
    .command('show <name>')
    .description('show a cohort and its members now')
    .action(async (name: string) => {
      const res = await call(ctx.api().api.v1.cohorts[':name'].$get({ param: { name } }));
      emit(ctx.out(), res, () => `cohort ${res.cohort.name}  selector: ${res.cohort.selector}  members: ${res.members.length}\n\n${table(res.members, DEVICE_COLUMNS)}`);
    });
  cohorts
    .command('set-selector <name> <selector>')
    .description("change a cohort's selector")
    .action(async (name: string, selector: string) => {
      const c = await call(ctx.api().api.v1.cohorts[':name'].$patch({ param: { name }, json: { selector } }));
      emit(ctx.out(), c, () => `cohort ${c.name} selector: ${c.selector}`);
    });
  cohorts
    .command('prefer-variant <name> <variant>')
    .description('devices of this cohort get the named variant (e.g. int8) of a deployed version when it has a ready one; "none" to clear')
    .action(async (name: string, variant: string) => {
      const c = await call(ctx.api().api.v1.cohorts[':name'].$patch({ param: { name }, json: { preferVariant: variant === 'none' ? null : variant } }));
      emit(ctx.out(), c, () => `cohort ${c.name} prefers ${c.preferVariant ?? 'no variant'}`);
    });
  cohorts
    .command('rm <name>')
    .description('delete a cohort')
    .action(async (name: string) => {
      await call(ctx.api().api.v1.cohorts[':name'].$delete({ param: { name } }));
      emit(ctx.out(), { deleted: name }, () => `deleted cohort ${name}`);
    });
}
