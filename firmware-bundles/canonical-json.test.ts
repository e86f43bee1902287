import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CanonicalJsonError, canonicalBytes, canonicalize } from './canonical-json.ts';

test('sorts keys recursively and drops whitespace', () => {
  assert.equal(canonicalize({ b: 1, a: { d: [3, { z: null, y: true }], c: 'x' } }), '{"a":{"c":"x","d":[3,{"y":true,"z":null}]},"b":1}');
  assert.equal(canonicalize({ b: 1, a: 2 }), canonicalize({ a: 2, b: 1 }));
});

test('orders keys by UTF-16 code units (RFC 8785 example)', () => {
  const input = { '\u20ac': 'Euro', '\r': 'CR', '\ufb33': 'Hebrew', '1': 'One', '\ud83d\ude00': 'Smiley', '\u0080': 'Ctl', '\u00f6': 'o' };
  // Read the order from the text: JSON.parse would move the integer-like key '1' first again.
  const values = [...canonicalize(input).matchAll(/:"([A-Za-z]+)"/g)].map((m) => m[1]);
  // U+1F600 (surrogates D83D DE00) sorts before U+FB33 by code units, after it by code points.
  assert.deepEqual(values, ['CR', 'One', 'Ctl', 'o', 'Euro', 'Smiley', 'Hebrew']);
});

test('formats numbers as ECMAScript shortest form', () => {
  assert.equal(canonicalize([1e21, 333333333.33333329, 1e30, 4.5, 2e-3, 1e-27, -0, 0, -1.5, 9007199254740991]), '[1e+21,333333333.3333333,1e+30,4.5,0.002,1e-27,0,0,-1.5,9007199254740991]');
});

test('escapes strings like JSON.stringify and encodes UTF-8', () => {
  assert.equal(canonicalize({ s: 'a"b\\c\n\u0001é' }), '{"s":"a\\"b\\\\c\\n\\u0001é"}');
  assert.deepEqual([...canonicalBytes({ s: 'é' })], [...Buffer.from('{"s":"é"}', 'utf8')]);
});

test('rejects values without a faithful JSON form', () => {
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  const bad: Array<[unknown, RegExp]> = [
    [NaN, /non-finite number at \$/],
    [{ a: [1, Infinity] }, /non-finite number at \$\.a\[1\]/],
    [{ a: -Infinity }, /non-finite/],
    [undefined, /undefined value at \$/],
    [{ a: undefined }, /undefined value at \$\.a/],
    [[1, undefined], /undefined value/],
    [{ f: () => 1 }, /function is not JSON/],
    [{ s: Symbol('x') }, /symbol is not JSON/],
    [{ n: 1n }, /bigint is not JSON/],
    [{ d: new Date(0) }, /not a plain object \(Date\)/],
    [new Map(), /not a plain object \(Map\)/],
    [{ t: new Uint8Array(2) }, /not a plain object/],
    [cycle, /cycle at \$\.self/],
    [{ s: 'x\ud800y' }, /lone surrogate/],
    [{ '\udc00': 1 }, /lone surrogate in key/],
  ];
  for (const [value, message] of bad) assert.throws(() => canonicalize(value), (e: unknown) => e instanceof CanonicalJsonError && message.test(e.message), String(message));
});

test('accepts shared (non-cyclic) references and null-prototype objects', () => {
  const shared = { x: 1 };
  assert.equal(canonicalize({ a: shared, b: shared }), '{"a":{"x":1},"b":{"x":1}}');
  const bare = Object.create(null) as Record<string, number>;
  bare.k = 1;
  assert.equal(canonicalize(bare), '{"k":1}');
});
