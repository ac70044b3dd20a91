'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Readable } = require('node:stream');
const { JsonLines, readJsonLines } = require('../lib/jsonlines');

function collect(opts) {
  const events = [];
  const garbage = [];
  const r = new JsonLines({ onEvent: (e) => events.push(e), onGarbage: (t, why) => garbage.push([t, why]), ...opts });
  return { r, events, garbage };
}

test('lines split anywhere, even inside a UTF-8 character, give whole events', () => {
  const text = '{"event":"selected","reason":"für die GPU — ok"}\n{"event":"progress","done":1,"total":2}\n';
  const bytes = Buffer.from(text);
  for (let size = 1; size <= 7; size++) {
    const { r, events, garbage } = collect();
    for (let i = 0; i < bytes.length; i += size) r.push(bytes.subarray(i, i + size));
    r.end();
    assert.deepEqual(events.map((e) => e.event), ['selected', 'progress'], `chunk size ${size}`);
    assert.equal(events[0].reason, 'für die GPU — ok');
    assert.equal(garbage.length, 0);
  }
});

test('CRLF, blank lines and a last line without newline', () => {
  const { r, events, garbage } = collect();
  r.push('{"event":"a"}\r\n\r\n\n   \n{"event":"b"}');
  assert.equal(events.length, 1);
  r.end();
  assert.deepEqual(events.map((e) => e.event), ['a', 'b']);
  assert.equal(garbage.length, 0);
});

test('garbage is reported and reading goes on; unknown events pass through', () => {
  const { r, events, garbage } = collect();
  r.push('warning: something printed to stdout\n{"event":"from_the_future","x":1}\n[1,2]\n{"no_event":1}\n"str"\nnull\n{"event":5}\n{"event":"ready","dir":"/d"}\n{broken json\n');
  r.end();
  assert.deepEqual(events, [{ event: 'from_the_future', x: 1 }, { event: 'ready', dir: '/d' }]);
  assert.equal(garbage.length, 7);
  assert.match(garbage[0][1], /not JSON/);
  assert.match(garbage[2][1], /"event" field/);
});

test('an over-long line is dropped whole, then reading resumes', () => {
  const { r, events, garbage } = collect({ maxLine: 64 });
  r.push('{"event":"x","pad":"');
  r.push('y'.repeat(100));
  r.push('z'.repeat(100));
  r.push('"}\n{"event":"after"}\n');
  r.end();
  assert.deepEqual(events.map((e) => e.event), ['after']);
  assert.equal(garbage.length, 1);
  assert.match(garbage[0][1], /longer than 64/);
});

test('readJsonLines reads a stream to its end', async () => {
  const events = [];
  await readJsonLines(Readable.from([Buffer.from('{"event":"a"}\n{"ev'), Buffer.from('ent":"b"}')]), { onEvent: (e) => events.push(e.event) });
  assert.deepEqual(events, ['a', 'b']);
});

test('a callback is required', () => {
  assert.throws(() => new JsonLines({}), /onEvent/);
});
