// Model references: `name@3` (a version number), `name@champion` (an alias) or `name` (the latest version).
import { Invalid } from '../errors.ts';

export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const ALIAS_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

export interface ModelRef {
  name: string;
  /** A version number, an alias, or 'latest'. */
  selector: { version: number } | { alias: string } | { latest: true };
}

export function parseModelRef(ref: string): ModelRef {
  const at = ref.indexOf('@');
  const name = at === -1 ? ref : ref.slice(0, at);
  const sel = at === -1 ? '' : ref.slice(at + 1);
  if (!MODEL_NAME.test(name)) throw Invalid(`invalid model name "${name}": use lowercase letters, digits, '.', '_' or '-'`);
  if (sel === '' || sel === 'latest') return { name, selector: { latest: true } };
  if (/^[1-9][0-9]{0,8}$/.test(sel)) return { name, selector: { version: Number(sel) } };
  if (ALIAS_NAME.test(sel)) return { name, selector: { alias: sel } };
  throw Invalid(`invalid model reference "${ref}": expected name@N, name@alias or name`);
}

export function formatRef(name: string, version: number): string {
  return `${name}@${version}`;
}
