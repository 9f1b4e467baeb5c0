import { describe, expect, it } from 'vitest';

import {
  type AuditRecordInput,
  MAX_DETAIL_LENGTH,
  normalizeAuditRecord,
} from '../../src/audit/event.js';

const minimal: AuditRecordInput = { type: 'policy.apply', actor: { type: 'cli', id: 'cli' } };

describe('normalizeAuditRecord', () => {
  it('fills absent fields with null', () => {
    expect(normalizeAuditRecord(minimal)).toEqual({
      type: 'policy.apply',
      workspace: null,
      actor: { type: 'cli', id: 'cli' },
      identity: null,
      invoker: null,
      scope: null,
      action: null,
      resource: null,
      decision: null,
      reason: null,
      bundle: null,
      grant: null,
      connection: null,
      revision: null,
      decision_id: null,
      request_id: null,
      detail: null,
    });
  });

  it('drops fields outside the record shape', () => {
    const record = { ...minimal, secret: 'x', actor: { type: 'cli', id: 'cli', extra: 1 } };
    const normalized = normalizeAuditRecord(record as AuditRecordInput);

    expect(normalized).not.toHaveProperty('secret');
    expect(normalized.actor).toEqual({ type: 'cli', id: 'cli' });
  });

  it('copies detail', () => {
    const detail = { list: [1, 2], nested: { a: 'b' } };
    const normalized = normalizeAuditRecord({ ...minimal, detail });
    detail.list.push(3);
    detail.nested.a = 'changed';

    expect(normalized.detail).toEqual({ list: [1, 2], nested: { a: 'b' } });
  });

  it.each([
    ['an empty type', { ...minimal, type: '' }, 'type'],
    ['an upper-case type', { ...minimal, type: 'Policy.Apply' }, 'type'],
    ['a type with an empty word', { ...minimal, type: 'policy..apply' }, 'type'],
    ['an unknown actor type', { ...minimal, actor: { type: 'robot', id: 'x' } }, 'actor.type'],
    ['an empty actor id', { ...minimal, actor: { type: 'cli', id: '' } }, 'actor.id'],
    ['a missing actor', { type: 'policy.apply' }, 'actor.type'],
    ['a numeric workspace', { ...minimal, workspace: 3 }, 'workspace'],
    ['an unknown decision', { ...minimal, decision: 'maybe' }, 'decision'],
    ['a fractional revision', { ...minimal, revision: 1.5 }, 'revision'],
    ['a negative revision', { ...minimal, revision: -1 }, 'revision'],
    ['an array detail', { ...minimal, detail: [1] }, 'detail'],
    ['a detail with NaN', { ...minimal, detail: { a: Number.NaN } }, 'detail.a'],
    ['a detail with a function', { ...minimal, detail: { f: () => 1 } }, 'detail.f'],
  ])('rejects %s', (_name, record, field) => {
    const normalize = () => normalizeAuditRecord(record as unknown as AuditRecordInput);

    expect(normalize).toThrow(TypeError);
    expect(normalize).toThrow(field);
  });

  it('rejects a detail over the size limit', () => {
    const detail = { text: 'x'.repeat(MAX_DETAIL_LENGTH) };

    expect(() => normalizeAuditRecord({ ...minimal, detail })).toThrow(/over the maximum/);
  });
});
