// Assertions the agent/runtime tests share: a RuntimeError with a given code, and float outputs
// compared with a plain-JS reference.
import assert from 'node:assert/strict';
import { RuntimeError } from '../../agent/runtime/errors.ts';

/** Awaits `p`, asserts it rejected with a RuntimeError of `code` (and a message matching `message`), returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<RuntimeError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}, got a result`),
    (e: unknown) => e,
  );
  assertRuntimeError(err, code, message);
  return err;
}

/** Calls `fn`, asserts it threw a RuntimeError of `code` (and a message matching `message`). */
export function throwsWith(fn: () => unknown, code: string, message?: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) assert.fail(`expected ${code}, got a result`);
  assertRuntimeError(err, code, message);
}

function assertRuntimeError(err: unknown, code: string, message: RegExp | undefined): asserts err is RuntimeError {
  assert.ok(err instanceof RuntimeError, `expected a RuntimeError, got ${err}`);
  assert.equal(err.code, code, err.message);
  if (message) assert.match(err.message, message);
}

/** Element-wise within 1e-4 (float32 outputs against a float64 reference). */
export function close(got: Float32Array, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, what);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-4, `${what}: ${got} vs ${Array.from(want)}`));
}
