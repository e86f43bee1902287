/**
 * Canonical JSON in the style of RFC 8785 (JCS): object keys sorted by UTF-16 code units, no
 * whitespace, numbers in ECMAScript shortest form, strings escaped as `JSON.stringify` does.
 * Signatures are computed over these bytes, so signer and verifier agree on one encoding of a value
 * whatever order its keys arrived in.
 *
 * Anything JSON cannot represent faithfully is rejected rather than silently dropped or coerced,
 * because a value that changes when it crosses the wire would change what was signed.
 *
 * @example
 * canonicalize({ b: 1, a: [true, null, 'x'] }) // '{"a":[true,null,"x"],"b":1}'
 * canonicalBytes({ a: 1 }) // Uint8Array of '{"a":1}' in UTF-8
 */

/**
 * Thrown for values that have no canonical JSON form; `path` points at the offending value.
 *
 * @example
 * try { canonicalize({ a: NaN }); } catch (e) { (e as CanonicalJsonError).path; } // '$.a'
 */
export class CanonicalJsonError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${message} at ${path}`);
    this.name = 'CanonicalJsonError';
  }
}

// A lone surrogate cannot be encoded as UTF-8, so the bytes would depend on the encoder (I-JSON forbids it).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Serializes a JSON value canonically.
 *
 * Rejects: non-finite numbers, `undefined` (also as an object property: absent and undefined must not
 * be two different signed values), functions, symbols, bigints, lone surrogates, cycles, and objects
 * that are not plain (Date, Map, typed arrays, class instances) since their JSON form is a convention.
 *
 * @example
 * canonicalize({ z: 1, a: { y: 2.5, b: 'é' } }) // '{"a":{"b":"é","y":2.5},"z":1}'
 * canonicalize({ a: NaN }) // throws CanonicalJsonError: non-finite number at $.a
 */
export function canonicalize(value: unknown): string {
  return write(value, '$', new Set());
}

/**
 * Canonical JSON encoded as UTF-8: the exact bytes that get signed and hashed.
 *
 * @example
 * const sig = sign(canonicalBytes(envelope.signed), privateKeyPem);
 */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalize(value));
}

function write(value: unknown, path: string, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value)) throw new CanonicalJsonError('lone surrogate in string', path);
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError('non-finite number', path);
      // ECMAScript Number-to-String is exactly the JCS number form (and prints -0 as 0).
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      throw new CanonicalJsonError('undefined value', path);
    case 'object':
      if (value === null) return 'null';
      return writeContainer(value, path, seen);
    default:
      throw new CanonicalJsonError(`${typeof value} is not JSON`, path);
  }
}

function writeContainer(value: object, path: string, seen: Set<object>): string {
  if (seen.has(value)) throw new CanonicalJsonError('cycle', path);
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const parts: string[] = [];
      for (let i = 0; i < value.length; i++) parts.push(write(value[i], `${path}[${i}]`, seen));
      return `[${parts.join(',')}]`;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new CanonicalJsonError(`not a plain object (${proto?.constructor?.name ?? 'unknown'})`, path);
    }
    const record = value as Record<string, unknown>;
    // Default string comparison in JS is by UTF-16 code units, which is what JCS specifies.
    const keys = Object.keys(record).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const parts: string[] = [];
    for (const key of keys) {
      const childPath = `${path}.${key}`;
      if (LONE_SURROGATE.test(key)) throw new CanonicalJsonError('lone surrogate in key', childPath);
      parts.push(`${JSON.stringify(key)}:${write(record[key], childPath, seen)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    seen.delete(value);
  }
}
