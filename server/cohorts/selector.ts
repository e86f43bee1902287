/**
 * Label selectors (Kubernetes-style), e.g. `site=berlin,hw in (rpi4,jetson),!quarantine`.
 * Terms are ANDed: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (absent).
 *
 * @example
 * const sel = parseSelector('site=berlin,!quarantine');
 * matches(sel, { site: 'berlin' }); // true
 */
export type SelectorTerm =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'absent' };

export class SelectorError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
    this.name = 'SelectorError';
  }
}

const KEY = /^[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9])?$/;
const VALUE = /^([a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?)?$/;

export function parseSelector(input: string): SelectorTerm[] {
  const terms: SelectorTerm[] = [];
  const src = input.trim();
  if (src === '') return terms;
  let pos = 0;
  const fail = (msg: string): never => {
    throw new SelectorError(`invalid selector at position ${pos}: ${msg} (in "${input}")`, pos);
  };
  const skipWs = () => {
    while (src[pos] === ' ') pos++;
  };
  const readWord = () => {
    skipWs();
    const start = pos;
    while (pos < src.length && /[a-zA-Z0-9._/-]/.test(src[pos])) pos++;
    return src.slice(start, pos);
  };
  while (pos < src.length) {
    skipWs();
    if (src[pos] === '!') {
      pos++;
      const key = readWord();
      if (!KEY.test(key)) fail(`expected a label key after "!"`);
      terms.push({ key, op: 'absent' });
    } else {
      const key = readWord();
      if (!KEY.test(key)) fail('expected a label key');
      skipWs();
      if (src.startsWith('!=', pos) || src.startsWith('==', pos) || src[pos] === '=') {
        const op = src.startsWith('!=', pos) ? 'neq' : 'eq';
        pos += src[pos] === '=' && src[pos + 1] !== '=' ? 1 : 2;
        const value = readWord();
        if (!VALUE.test(value)) fail(`invalid value for "${key}"`);
        terms.push({ key, op, value });
      } else if (/^(in|notin)\s*\(/.test(src.slice(pos))) {
        const op = src.startsWith('notin', pos) ? 'notin' : 'in';
        pos += op.length;
        skipWs();
        pos++; // '('
        const values: string[] = [];
        for (;;) {
          const v = readWord();
          if (!v || !VALUE.test(v)) fail(`expected a value in the "${op}" list of "${key}"`);
          values.push(v);
          skipWs();
          if (src[pos] === ',') {
            pos++;
            continue;
          }
          if (src[pos] === ')') {
            pos++;
            break;
          }
          fail(`expected "," or ")" in the "${op}" list of "${key}"`);
        }
        terms.push({ key, op, values });
      } else {
        terms.push({ key, op: 'exists' });
      }
    }
    skipWs();
    if (pos < src.length) {
      if (src[pos] !== ',') fail('expected "," between terms');
      pos++;
      skipWs();
      if (pos >= src.length) fail('trailing ","');
    }
  }
  return terms;
}

export function matches(terms: SelectorTerm[], labels: Record<string, string>): boolean {
  return terms.every((t) => {
    const has = Object.hasOwn(labels, t.key);
    const v = labels[t.key];
    switch (t.op) {
      case 'eq':
        return has && v === t.value;
      case 'neq':
        return !has || v !== t.value;
      case 'in':
        return has && t.values.includes(v);
      case 'notin':
        return !has || !t.values.includes(v);
      case 'exists':
        return has;
      case 'absent':
        return !has;
    }
  });
}
