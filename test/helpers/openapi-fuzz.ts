// Requests generated from the control plane's OpenAPI document with a seeded generator: for each
// operation, values that follow the schema and values at or past its edges (bounds ± 1, empty, huge,
// wrong types, hostile strings), for every path, query and body field. Deterministic for a seed.
import { mulberry32 } from '../../protocol/sketch/random.ts';

type Schema = Record<string, any>;

export interface FuzzRequest {
  method: string;
  path: string;
  /** The OpenAPI path template, for reporting. */
  route: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  '__proto__',
  'constructor',
  '../../../etc/passwd',
  '%2e%2e%2f',
  "' OR 1=1 --",
  '😀',
  'null',
  '-1',
  '0',
  '1e309',
  '9007199254740993',
  '999999999d',
  '0000-01-01T00:00:00Z',
  '+275760-09-13T00:00:00.001Z',
  'a,b=c,!d,e in (f',
  'name@',
  '@latest',
  'x'.repeat(5000),
];

const WRONG_TYPES: unknown[] = [null, true, false, 0, -1, 1.5, 'string', [], {}, [null], { a: 1 }];

export class OpenApiFuzzer {
  private readonly rand: () => number;

  /** `pool`: strings likely to name things that exist (ids, names), so requests reach past the 404. */
  constructor(private readonly doc: Schema, seed: number, private readonly pool: string[]) {
    this.rand = mulberry32(seed);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)];
  }
  private chance(p: number): boolean {
    return this.rand() < p;
  }

  private resolve(s: Schema | undefined): Schema {
    let cur = s ?? {};
    for (let i = 0; cur.$ref && i < 20; i++) cur = cur.$ref.replace(/^#\//, '').split('/').reduce((o: Schema, k: string) => o?.[k], this.doc) ?? {};
    return cur;
  }

  /** Every operation in the document as [route, method, operation]. */
  operations(): Array<[string, string, Schema]> {
    const out: Array<[string, string, Schema]> = [];
    for (const [route, item] of Object.entries(this.doc.paths as Record<string, Schema>)) {
      for (const [method, op] of Object.entries(item)) if (['get', 'post', 'put', 'patch', 'delete'].includes(method)) out.push([route, method, op]);
    }
    return out;
  }

  /** A value for `schema`; `edge` is the chance that any one value is an edge case instead. */
  value(schema: Schema | undefined, edge: number, depth = 0): unknown {
    const s = this.resolve(schema);
    if (this.chance(edge)) return this.edgeValue(s);
    if (s.anyOf || s.oneOf) return this.value(this.pick((s.anyOf ?? s.oneOf) as Schema[]), edge, depth);
    if (s.allOf) return Object.assign({}, ...(s.allOf as Schema[]).map((x) => this.value(x, edge, depth)));
    if (s.enum) return this.pick(s.enum as unknown[]);
    if ('const' in s) return s.const;
    const type = Array.isArray(s.type) ? this.pick(s.type as string[]) : s.type;
    switch (type) {
      case 'null':
        return null;
      case 'boolean':
        return this.chance(0.5);
      case 'integer':
      case 'number': {
        const lo = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 0);
        const hi = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - 1 : lo + 100);
        const v = lo + this.rand() * Math.min(hi - lo, 1000);
        return type === 'integer' ? Math.floor(v) : v;
      }
      case 'string':
        return this.stringValue(s);
      case 'array': {
        if (depth > 4) return [];
        const n = Math.min(s.minItems ?? 0, 5) + Math.floor(this.rand() * 3);
        return Array.from({ length: Math.min(n, s.maxItems ?? n) }, () => this.value(s.items, edge, depth + 1));
      }
      case 'object':
      default: {
        if (depth > 4 || (!s.properties && !s.additionalProperties && type !== 'object')) return this.pick(['x', 1, true, null]);
        const out: Record<string, unknown> = {};
        const required = new Set<string>(s.required ?? []);
        for (const [k, sub] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
          if (required.has(k) ? !this.chance(edge / 2) : this.chance(0.6)) out[k] = this.value(sub, edge, depth + 1);
        }
        if (s.additionalProperties && typeof s.additionalProperties === 'object') {
          for (let i = Math.floor(this.rand() * 3); i > 0; i--) out[this.pick(['site', 'hw', 'k1', 'a.b/c', this.pick(this.pool)])] = this.value(s.additionalProperties, edge, depth + 1);
        }
        return out;
      }
    }
  }

  private stringValue(s: Schema): string {
    if (s.format === 'date-time') return new Date(Date.now() - Math.floor(this.rand() * 86400e3)).toISOString();
    if (s.format === 'uri') return 'http://127.0.0.1:9/hook';
    if (s.example !== undefined && this.chance(0.4)) return String(s.example);
    if (this.chance(0.5)) return this.pick(this.pool);
    const len = Math.max(s.minLength ?? 1, 1) + Math.floor(this.rand() * 8);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
    let out = '';
    for (let i = 0; i < Math.min(len, s.maxLength ?? len); i++) out += alphabet[Math.floor(this.rand() * alphabet.length)];
    return out;
  }

  /** A value at or past the edges of `s`, or of another type altogether. */
  edgeValue(s: Schema): unknown {
    const type = Array.isArray(s.type) ? s.type[0] : s.type;
    const r = this.rand();
    if (r < 0.25) return this.pick(WRONG_TYPES);
    if (type === 'integer' || type === 'number') {
      const candidates = [0, -1, 0.5, 1e308, -1e308, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER];
      for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) if (typeof s[k] === 'number') candidates.push(s[k], s[k] - 1, s[k] + 1);
      return this.pick(candidates);
    }
    if (type === 'array') {
      const n = this.pick([0, (s.maxItems ?? 1000) + 1, (s.minItems ?? 1) - 1]);
      return Array.from({ length: Math.max(0, Math.min(n, 20_001)) }, () => (this.chance(0.5) ? this.value(s.items, 0) : this.pick(WRONG_TYPES)));
    }
    if (type === 'object') return this.pick([{}, { __proto__: null, constructor: 1 }, JSON.parse('{"__proto__":{"x":1}}'), Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, 'v']))]);
    const long = typeof s.maxLength === 'number' ? ['y'.repeat(s.maxLength), 'y'.repeat(s.maxLength + 1)] : [];
    return this.pick([...HOSTILE_STRINGS, ...long, 'z'.repeat(200_000)]);
  }

  /** One request for an operation; `edge` as in value(). */
  request(route: string, method: string, op: Schema, edge: number): FuzzRequest {
    let path = route;
    const query = new URLSearchParams();
    for (const p of (op.parameters ?? []) as Schema[]) {
      const param = this.resolve(p);
      if (param.in === 'path') {
        const v = this.chance(edge) ? this.pick(HOSTILE_STRINGS.filter((x) => x !== '')) : this.pick([...this.pool, String(this.value(param.schema, 0))]);
        path = path.replace(`{${param.name}}`, encodeURIComponent(String(v)));
      } else if (param.in === 'query' && (param.required || this.chance(0.6))) {
        const v = this.value(param.schema, edge);
        for (const item of Array.isArray(v) ? v : [v]) query.append(param.name, typeof item === 'object' && item !== null ? JSON.stringify(item) : String(item));
      }
    }
    const qs = query.toString();
    const req: FuzzRequest = { method: method.toUpperCase(), route, path: path + (qs ? `?${qs}` : ''), headers: {} };
    const content = (op.requestBody?.content ?? {}) as Record<string, Schema>;
    const types = Object.keys(content);
    if (types.length) {
      const type = this.pick(types);
      req.headers['content-type'] = this.chance(0.05) ? 'text/plain' : type;
      if (type === 'application/json') {
        req.body = this.chance(0.05) ? this.pick(['{', '', 'null', '[]', '{"a":']) : JSON.stringify(this.value(content[type].schema, edge));
      } else {
        const bytes = new Uint8Array(Math.floor(this.rand() * 2048));
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(this.rand() * 256);
        req.body = this.chance(0.3) ? this.pick(['', 'a,b\n1,2\n', '{"x":1}\n{"y":', 'label\n' + 'x'.repeat(3000)]) : bytes;
      }
    }
    return req;
  }
}
