// `flotilla keys|bundles|deploy|deployments`: signing keys, bundle builds and deployments.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { KeyList } from '../../../firmware-bundles/key-list.ts';
import { call, type Api } from '../api.ts';
import { withSpinner } from '../progress.ts';
import { CliError, emit, keyValues, parseDuration, table, type Output, wholeNumber } from '../output.ts';
import { startRollout } from './rollouts.ts';

const collect = (v: string, prev: string[]) => [...prev, v];
// Signing and bundle definitions (zod schemas, ≈ 0.75 MB of bundled code) load when a command needs
// them, not for every `flotilla` start (README, "CLI start-up").
const keyLists = () => import('../../../firmware-bundles/key-list.ts');
const keyPairs = () => import('../../../firmware-bundles/keys.ts');
const definitions = () => import('../../../firmware-bundles/load-definition.ts');

async function definitionPath(def: string): Promise<string> {
  const s = await stat(def).catch(() => null);
  if (!s) throw new CliError(`no such definition: ${def}: give --def a bundle definition folder or its bundle.json (e.g. firmware-bundles/tabular-demo)`, 2);
  return s.isDirectory() ? path.join(def, 'bundle.json') : def;
}

/** The offline root key from `file` and the server's current key list, checked to belong together (keys rotate|renew). */
async function rootAndKeyList(api: Api, file: string): Promise<{ rootPem: string; list: KeyList }> {
  const { publicKeyOf, readPrivateKeyFile } = await keyPairs();
  const rootPem = await readPrivateKeyFile(file).catch((err: Error) => {
    throw new CliError(`cannot read root key ${file}: ${err.message}: pass --root-key the file \`flotilla keys init --root-key <file>\` wrote`, 2);
  });
  const current = await call(api.api.v1.keys.$get());
  if (!current.keylist) throw new CliError('no key list yet: run `flotilla keys init --root-key <file>` first');
  const list = current.keylist.signed as unknown as KeyList;
  if (publicKeyOf(rootPem).keyid !== list.root.keyid) throw new CliError(`${file} is not this server's root key (${list.root.keyid}): pass --root-key the file \`flotilla keys init\` wrote for this server`, 2);
  return { rootPem, list };
}

export function registerReleaseCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const keys = program.command('keys').description('signing keys: offline root, release keys, key list');
  keys
    .command('init')
    .description('create the offline root key (written to a file the server never reads) and the first release key')
    .requiredOption('--root-key <file>', 'where to write the root private key (mode 0600); keep it offline')
    .option('--expires <duration>', 'key list lifetime', '365d')
    .action(async (o: { rootKey: string; expires: string }) => {
      const expiresAt = new Date(Date.now() + parseDuration(o.expires) * 1000);
      const api = ctx.api();
      const existing = await call(api.api.v1.keys.$get());
      if (existing.keylist) throw new CliError('keys are already initialised on this server; use `flotilla keys rotate`', 1);
      if (await stat(o.rootKey).catch(() => null)) throw new CliError(`${o.rootKey} exists; refusing to overwrite a root key`, 2);
      const [{ createKeyList, signKeyList }, { generateKeyPair, writePrivateKeyFile }] = await Promise.all([keyLists(), keyPairs()]);
      const root = generateKeyPair();
      await writePrivateKeyFile(o.rootKey, root.privateKeyPem);
      const release = await call(api.api.v1.keys.release.$post());
      const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt });
      const stored = await call(api.api.v1.keys.keylist.$put({ json: signKeyList(list, root.privateKeyPem) as never }));
      emit(ctx.out(), { rootKeyid: root.keyid, rootPublicKey: root.publicKey, releaseKeyid: release.keyid, keylistVersion: stored.version }, () =>
        [
          `root key written to ${o.rootKey} (keep it offline; it is needed only to rotate release keys)`,
          keyValues({ rootKeyid: root.keyid, rootPublicKey: root.publicKey, releaseKey: release.keyid, keylistVersion: stored.version, expiresAt: expiresAt.toISOString() }),
          `\nagents pin the root with: flotilla-agent --trust-root ${root.publicKey} ...`,
        ].join('\n'),
      );
    });
  keys
    .command('rotate')
    .description('add a new release key and retire old ones; devices receive the new key list with their desired state')
    .requiredOption('--root-key <file>', 'the offline root private key')
    .option('--retire <keyid>', 'release key to retire (repeatable; default: all current ones)', collect, [])
    .option('--keep-old', 'retire nothing (add a key only)')
    .option('--expires <duration>', 'key list lifetime', '365d')
    .action(async (o: { rootKey: string; retire: string[]; keepOld?: boolean; expires: string }) => {
      const { rotateKeyList, signKeyList } = await keyLists();
      const api = ctx.api();
      const { rootPem, list } = await rootAndKeyList(api, o.rootKey);
      const release = await call(api.api.v1.keys.release.$post());
      const retire = o.keepOld ? [] : o.retire.length ? o.retire : list.keys.map((k) => k.keyid);
      const next = rotateKeyList(list, { add: [release], retire, expiresAt: new Date(Date.now() + parseDuration(o.expires) * 1000) });
      const stored = await call(api.api.v1.keys.keylist.$put({ json: signKeyList(next, rootPem) as never }));
      emit(ctx.out(), { keylistVersion: stored.version, added: release.keyid, retired: retire, keys: stored.keys }, () =>
        `key list v${stored.version}: added ${release.keyid}, retired ${retire.join(', ') || 'none'}; every device's desired state was re-signed and republished`,
      );
    });
  keys
    .command('renew')
    .description('sign the next key list version with the same release keys and a new expiry (before the current one expires)')
    .requiredOption('--root-key <file>', 'the offline root private key')
    .option('--expires <duration>', 'key list lifetime', '365d')
    .action(async (o: { rootKey: string; expires: string }) => {
      const { rotateKeyList, signKeyList } = await keyLists();
      const api = ctx.api();
      const { rootPem, list } = await rootAndKeyList(api, o.rootKey);
      const next = rotateKeyList(list, { expiresAt: new Date(Date.now() + parseDuration(o.expires) * 1000) });
      const stored = await call(api.api.v1.keys.keylist.$put({ json: signKeyList(next, rootPem) as never }));
      emit(ctx.out(), { keylistVersion: stored.version, expiresAt: next.expiresAt, keys: stored.keys }, () =>
        `key list v${stored.version} expires ${next.expiresAt}; every device's desired state was re-signed and republished`,
      );
    });
  keys
    .command('show')
    .description('the current key list, its expiry (warns ahead of it) and release keys')
    .action(async () => {
      const res = await call(ctx.api().api.v1.keys.$get());
      const list = res.keylist?.signed as KeyList | undefined;
      const warning = res.expiry?.warning ? `\nWARNING: ${res.expiry.warning}` : '';
      emit(ctx.out(), res, () =>
        list
          ? `key list v${list.version} (threshold ${list.threshold}, expires ${list.expiresAt}), root ${list.root.keyid}${warning}\n\n${table(res.releaseKeys, ['keyid', 'createdAt', 'retiredAt'])}`
          : 'no keys yet: run `flotilla keys init --root-key <file>`',
      );
      if (res.expiry?.warning) process.stderr.write(`warning: ${res.expiry.warning}\n`);
    });

  const bundles = program.command('bundles').description('signed model bundles');
  bundles
    .command('build <model>')
    .description('build a bundle on the server from model@N and a definition (folder with bundle.json, or the file)')
    .requiredOption('--def <path>', 'e.g. firmware-bundles/tabular-demo')
    .action(async (model: string, o: { def: string }) => {
      const file = await definitionPath(o.def);
      let loaded;
      try {
        loaded = await (await definitions()).loadBundleDefinition(file);
      } catch (err) {
        throw new CliError((err as Error).message, 2);
      }
      const b = await withSpinner(ctx.out(), `building the bundle of ${model} (smoke vectors)`, call(ctx.api().api.v1.bundles.$post({ json: { model, definition: loaded.definition as Record<string, unknown>, labels: loaded.labels } })));
      emit(ctx.out(), b, () => `built ${b.id} (${b.name} from ${b.model}): ${b.files.map((f) => `${f.path} ${f.size} B sha256 ${f.sha256.slice(0, 12)}…`).join(', ')}`);
    });
  bundles
    .command('ls')
    .description('list bundles')
    .option('--name <name>')
    .action(async (o: { name?: string }) => {
      const res = await call(ctx.api().api.v1.bundles.$get({ query: { name: o.name } }));
      emit(ctx.out(), res, () => table(res.bundles, ['id', 'name', 'model', 'minAgentVersion', 'createdAt']));
    });
  bundles
    .command('show <id>')
    .description('show a bundle and its files')
    .action(async (id: string) => {
      const b = await call(ctx.api().api.v1.bundles[':id'].$get({ param: { id } }));
      emit(ctx.out(), b, () => `${keyValues({ id: b.id, name: b.name, model: b.model, minAgentVersion: b.minAgentVersion, createdAt: b.createdAt })}\n\n${table(b.files, ['path', 'size', 'sha256'])}`);
    });

  program
    .command('deploy <bundle>')
    .description('publish a bundle (id, name, or model@N) as the desired state of a device or a cohort; with --canary, start a staged rollout on the cohort')
    .option('--device <id>')
    .option('--cohort <name>')
    .option('--canary <stages>', 'roll out in stages instead (same as `rollouts start --stages`), e.g. 10%,50%,100%')
    .option('--bake <duration>', 'with --canary: how long a stage stays healthy before the next one', '5m')
    .option('--rollback-on-failure', 'with --canary: a failed gate rolls the stage back (default: pause)')
    .action(async (bundle: string, o: { device?: string; cohort?: string; canary?: string; bake: string; rollbackOnFailure?: boolean }) => {
      if (o.canary !== undefined && o.device) throw new CliError('--canary rolls out to a cohort: use --cohort, not --device', 2);
      if (Boolean(o.device) === Boolean(o.cohort)) throw new CliError('give exactly one of --device or --cohort', 2);
      if (o.canary !== undefined) {
        return startRollout(ctx, bundle, { cohort: o.cohort!, stages: o.canary, bake: o.bake, maxFailed: '0', onFailure: o.rollbackOnFailure ? 'rollback' : 'pause' }, '--canary');
      }
      if (o.rollbackOnFailure) throw new CliError('--rollback-on-failure goes with --canary', 2);
      const d = await call(ctx.api().api.v1.deployments.$post({ json: { bundle, device: o.device, cohort: o.cohort } }));
      emit(ctx.out(), d, () => `deployment ${d.id}: ${d.bundleId} -> ${d.devices.length} device(s)${d.devices.length ? ': ' + d.devices.join(', ') : ''}`);
    });
  const deployments = program.command('deployments').description('deployments and their status');
  deployments
    .command('ls', { isDefault: true })
    .description('list deployments, newest first, with how many of their devices are active, updating, pending and failed')
    .option('--limit <n>', 'how many', wholeNumber, '20')
    .action(async (o: { limit: string }) => {
      const api = ctx.api();
      const res = await call(api.api.v1.deployments.$get({ query: { limit: o.limit } }));
      const statuses = await Promise.all(res.deployments.map((d) => call(api.api.v1.deployments[':id'].status.$get({ param: { id: d.id }, query: {} }))));
      const rows = res.deployments.map((d, i) => ({ ...d, target: `${d.targetKind} ${d.target}`, ...summary(statuses[i].counts), superseded: statuses[i].superseded.length }));
      emit(ctx.out(), rows, () => table(rows, ['id', 'bundleId', 'target', 'deviceCount', 'active', 'updating', 'pending', 'failed', 'superseded', 'staleDevices', 'createdAt', 'createdBy']));
    });
  deployments
    .command('show <id>')
    .description("one deployment's status: devices per state, each device's bundle, state and failure reason")
    .action(async (id: string) => {
      const st = await call(ctx.api().api.v1.deployments[':id'].status.$get({ param: { id }, query: {} }));
      emit(ctx.out(), st, () => {
        const counts = Object.entries(st.counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'no devices';
        const devices = st.devices.map((d) => ({ ...d, online: d.online ? 'yes' : 'no', reason: d.error ? `${d.error.code}: ${d.error.message}` : null }));
        const moved = st.superseded.length ? `\n\nsuperseded (served this deployment, since given another):\n${table(st.superseded.map((d) => ({ ...d, to: d.to ?? 'now' })), ['deviceId', 'name', 'model', 'bundleId', 'from', 'to', 'supersededBy'])}` : '';
        return `${keyValues({ id: st.deploymentId, bundle: st.bundleId, target: `${st.target.kind} ${st.target.name}`, created: st.createdAt, devices: counts })}\n\n${table(devices, ['deviceId', 'name', 'online', 'bundleId', 'activeModel', 'activeBundleId', 'state', 'reason', 'updatedAt'])}${moved}`;
      });
    });
}

/** Devices of a deployment in four buckets: active, updating (between download and probation), pending, failed. */
function summary(counts: Record<string, number>) {
  const { active = 0, pending = 0, failed = 0, rolled_back = 0, ...rest } = counts;
  return { active, updating: Object.values(rest).reduce((a, b) => a + b, 0), pending, failed: failed + rolled_back };
}
