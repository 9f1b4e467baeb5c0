import fc from 'fast-check';
import { canonicalize } from 'json-canonicalize';
import { describe, expect, it } from 'vitest';

import { canonicalizeEvent, canonicalizeJson } from '../../src/audit/canonical.js';
import type { AuditEvent } from '../../src/audit/event.js';

/** Any UTF-16 code unit, so strings include control characters and lone surrogates. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
const anyString = fc.oneof(
  fc.string({ unit: codeUnit }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
);
const nullableString = fc.option(anyString, { nil: null });
const anyNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(0, -0, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE),
);

const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    anyNumber,
    anyString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(anyString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const auditEvent: fc.Arbitrary<AuditEvent> = fc.record({
  type: anyString,
  workspace: nullableString,
  actor: fc.record({
    type: fc.constantFrom('agent', 'member', 'api_key', 'cli', 'system'),
    id: anyString,
  }),
  identity: nullableString,
  invoker: nullableString,
  scope: nullableString,
  action: nullableString,
  resource: nullableString,
  decision: fc.constantFrom('allow', 'deny', null),
  reason: nullableString,
  bundle: nullableString,
  grant: nullableString,
  connection: nullableString,
  revision: fc.option(fc.nat(), { nil: null }),
  decision_id: nullableString,
  request_id: nullableString,
  detail: fc.option(fc.dictionary(anyString, jsonValue, { maxKeys: 6 }), { nil: null }),
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  time: fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
  prev: fc.stringMatching(/^[0-9a-f]{64}$/),
});

describe('canonicalizeEvent', () => {
  it('equals json-canonicalize for any event', () => {
    fc.assert(
      fc.property(auditEvent, (event) => {
        expect(canonicalizeEvent(event)).toBe(canonicalize(event));
      }),
      { numRuns: 2000 },
    );
  });

  it('parses back to the same event', () => {
    fc.assert(
      fc.property(auditEvent, (event) => {
        const text = canonicalizeEvent(event);

        expect(canonicalizeEvent(JSON.parse(text) as AuditEvent)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });
});

describe('canonicalizeJson', () => {
  it('equals json-canonicalize for any JSON value', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        expect(canonicalizeJson(value)).toBe(canonicalize(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('serializes the RFC 8785 number and string example', () => {
    // RFC 8785 section 3.2.2 input and expected output.
    const input =
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
      '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
      '"literals":[null,true,false]}';
    const expected =
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';

    expect(canonicalizeJson(JSON.parse(input))).toBe(expected);
  });

  it('sorts keys by UTF-16 code units', () => {
    // RFC 8785 section 3.2.3 sorting example.
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const expected =
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
      '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
      '"\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}';

    expect(canonicalizeJson(input)).toBe(expected);
  });

  it('skips undefined members and nulls undefined items', () => {
    expect(canonicalizeJson({ b: undefined, a: [undefined, 1] })).toBe('{"a":[null,1]}');
  });

  it('serializes toJSON values', () => {
    expect(canonicalizeJson({ at: new Date(0) })).toBe('{"at":"1970-01-01T00:00:00.000Z"}');
  });

  it.each([
    ['NaN', { a: Number.NaN }, 'value.a is NaN'],
    ['Infinity', { a: [Infinity] }, 'value.a[0] is Infinity'],
    ['a bigint', { a: 1n }, 'value.a is a bigint'],
    ['a function', { a: () => 1 }, 'value.a is a function'],
    ['a symbol', { a: Symbol('s') }, 'value.a is a symbol'],
  ])('rejects %s', (_name, value, message) => {
    expect(() => canonicalizeJson(value)).toThrow(TypeError);
    expect(() => canonicalizeJson(value)).toThrow(message);
  });

  it('rejects a cycle', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;

    expect(() => canonicalizeJson(cyclic)).toThrow(/nested deeper than 64 levels/);
  });
});
