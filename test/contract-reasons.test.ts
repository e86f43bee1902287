// The wire list of update failure codes (protocol/) mirrors the verifier's reasons (firmware-bundles/):
// protocol/ may not import firmware-bundles/, so this test keeps the two lists from drifting apart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FILE_REJECT_REASONS, KEYLIST_REJECT_REASONS, MANIFEST_REJECT_REASONS } from '../firmware-bundles/reasons.ts';
import { UPDATE_FAILURE_CODES } from '../protocol/messages/reported.ts';

test('every key-list, manifest and file rejection reason can be reported on `reported`', () => {
  const wire = new Set<string>(UPDATE_FAILURE_CODES);
  const missing = [...KEYLIST_REJECT_REASONS, ...MANIFEST_REJECT_REASONS, ...FILE_REJECT_REASONS].filter((r) => !wire.has(r));
  assert.deepEqual(missing, []);
});
