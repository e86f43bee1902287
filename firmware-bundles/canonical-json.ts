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
// String.prototype.isWellFormed (ES2024, Node ≥ 20) tests exactly that, several times faster than a regex.
const wellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * A refusal deep inside a value: the path is assembled while it unwinds (each container prepends its
 * key), so a value that has a canonical form builds no path strings at all.
 */
class Refusal {
  constructor(
    readonly message: string,
    public path: string,
  ) {}
}

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
  try {
    return write(value, new Set());
  } catch (err) {
    if (err instanceof Refusal) throw new CanonicalJsonError(err.message, `$${err.path}`);
    throw err;
  }
}

/**
 * Canonical JSON encoded as UTF-8: the exact bytes that get signed and hashed.
 *
 * @example
 * const sig = sign(canonicalBytes(envelope.signed), privateKeyPem);
 */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8.encode(canonicalize(value));
}

const utf8 = new TextEncoder();

function write(value: unknown, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      if (!wellFormed(value)) throw new Refusal('lone surrogate in string', '');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Refusal('non-finite number', '');
      // ECMAScript Number-to-String is exactly the JCS number form (and prints -0 as 0).
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      throw new Refusal('undefined value', '');
    case 'object':
      if (value === null) return 'null';
      return writeContainer(value, seen);
    default:
      throw new Refusal(`${typeof value} is not JSON`, '');
  }
}

function writeContainer(value: object, seen: Set<object>): string {
  if (seen.has(value)) throw new Refusal('cycle', '');
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      let out = '[';
      for (let i = 0; i < value.length; i++) {
        try {
          out += (i ? ',' : '') + write(value[i], seen);
        } catch (err) {
          if (err instanceof Refusal) err.path = `[${i}]${err.path}`;
          throw err;
        }
      }
      return out + ']';
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) throw new Refusal(`not a plain object (${proto?.constructor?.name ?? 'unknown'})`, '');
    const record = value as Record<string, unknown>;
    // Default string comparison in JS is by UTF-16 code units, which is what JCS specifies.
    const keys = Object.keys(record).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let out = '{';
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k];
      try {
        if (!wellFormed(key)) throw new Refusal('lone surrogate in key', '');
        out += `${k ? ',' : ''}${JSON.stringify(key)}:${write(record[key], seen)}`;
      } catch (err) {
        if (err instanceof Refusal) err.path = `.${key}${err.path}`;
        throw err;
      }
    }
    return out + '}';
  } finally {
    seen.delete(value);
  }
}
