// The console's event-stream parser (web/src/sse-parser.ts): events split across chunks in any place,
// CRLF line ends, comments (keep-alives) ignored, multi-line data, and the last id kept for resuming.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type SseMessage, SseParser } from '../web/src/sse-parser.ts';

const STREAM =
  ': keep-alive\n\n' +
  'id: 41\nevent: device\ndata: {"id":41,"kind":"device","type":"device.online"}\n\n' +
  'id: 42\r\nevent: rollout\r\ndata: {"id":42,\r\ndata: "kind":"rollout"}\r\n\r\n' +
  'data: no id here\n\n';

function parse(chunks: string[]): { got: SseMessage[]; last: string | null } {
  const got: SseMessage[] = [];
  const p = new SseParser((m) => got.push(m));
  for (const c of chunks) p.push(c);
  return { got, last: p.lastEventId };
}

test('whole stream and every two-way split of it give the same events', () => {
  const expected: SseMessage[] = [
    { id: '41', event: 'device', data: '{"id":41,"kind":"device","type":"device.online"}' },
    { id: '42', event: 'rollout', data: '{"id":42,\n"kind":"rollout"}' },
    { id: '42', event: 'message', data: 'no id here' },
  ];
  assert.deepEqual(parse([STREAM]).got, expected);
  for (let i = 1; i < STREAM.length; i++) assert.deepEqual(parse([STREAM.slice(0, i), STREAM.slice(i)]).got, expected, `split at ${i}`);
  assert.deepEqual(parse([...STREAM]).got, expected, 'one character at a time');
  assert.equal(parse([STREAM]).last, '42');
});

test('an event is dispatched only once its blank line arrives', () => {
  const { got } = parse(['id: 1\ndata: x\n']);
  assert.equal(got.length, 0);
});
