import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { decide } from '../../src/engine/decide.js';
import { PolicyEngine } from '../../src/engine/engine.js';
import type { Decision, DecisionRequest } from '../../src/engine/types.js';
import type { Policy } from '../../src/model/policy.js';
import { parsePolicy } from '../../src/model/validate.js';
import { referenceMatchAction, referenceMatchResource } from '../model/reference-match.js';
import {
  NOW,
  policyArbitrary,
  REQUEST_ACTIONS,
  REQUEST_RESOURCES,
  scenarioArbitrary,
} from './arbitraries.js';
import {
  entitlementsOf,
  isValidAction,
  isValidResource,
  referenceDecide,
  type ReferenceGrant,
  scopeGrants,
} from './reference.js';

const RUNS = 1000;

function decideUnder(policy: Policy, request: DecisionRequest): Decision {
  const engine = new PolicyEngine();
  engine.load(policy, 1);
  return engine.decide(request, NOW);
}

function expectAgreement(policy: Policy, request: DecisionRequest): void {
  const decision = decideUnder(policy, request);
  const expected = referenceDecide(new Map([['w', policy]]), request, NOW);

  expect(decision.reason).toBe(expected.reason);
  expect(decision.allowed).toBe(expected.reason === 'granted');
  expect(decision.identity).toBe(expected.identity);
  expect(decision.guardrail).toBe(expected.guardrail);

  // DM decisions report the member's entitlement, which the reference does not name.
  if (request.channel?.startsWith('dm:')) {
    expect(decision.bundle).toBeNull();
    expect(decision.attachment).toBeNull();
    return;
  }
  expect(decision.bundle).toBe(expected.grant?.bundle ?? null);
  expect(decision.attachment).toBe(expected.grant?.attachment ?? null);
  expect(decision.grant).toBe(expected.grant?.grant ?? null);
  expect(decision.connection).toBe(expected.grant?.connection ?? null);
}

function scopeVisibility(policy: Policy, request: DecisionRequest): string {
  if (request.channel === undefined) return 'workspace';
  if (request.channel.startsWith('dm:')) return 'dm';
  return policy.scopes.channels.find((channel) => channel.id === request.channel)?.visibility ?? '';
}

function withGuardrail(policy: Policy, guardrail: Policy['guardrails'][number]): Policy {
  const result = parsePolicy({ ...policy, guardrails: [...policy.guardrails, guardrail] });
  if (!result.ok) throw new Error(`invalid guardrail: ${JSON.stringify(result.issues)}`);
  return result.policy;
}

/** Drops the decision fields that differ on every call or echo the invoker. */
function comparable(decision: Decision): Omit<Decision, 'decisionId' | 'invoker'> {
  const { decisionId: _id, invoker: _invoker, ...rest } = decision;
  return rest;
}

describe('engine against a naive evaluator', () => {
  it('agrees on every decision', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), ([policy, request]) => {
        expectAgreement(policy, request);
      }),
      { numRuns: RUNS },
    );
  });

  it('never allows without a rule', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), ([policy, request]) => {
        const decision = decideUnder(policy, request);
        if (!decision.allowed) return;

        const caseInsensitive = new Set(policy.workspace.case_insensitive_types);
        const matches = (rule: { actions: readonly string[]; resources: readonly string[] }) =>
          rule.actions.some((pattern) => referenceMatchAction(pattern, request.action)) &&
          rule.resources.some((pattern) =>
            referenceMatchResource(pattern, request.resource, caseInsensitive),
          );

        if (request.resource.startsWith('memory:')) {
          expect(['memory.read', 'memory.write']).toContain(request.action.toLowerCase());
          expect(decision.grant).toBeNull();
          return;
        }
        if (request.channel?.startsWith('dm:')) {
          const member = request.channel.slice(3);
          expect(entitlementsOf(policy, member).some(matches)).toBe(true);
          return;
        }

        // The same bundle may be attached twice (say once time-boxed), under one name.
        const candidates = scopeGrants(policy, request.channel).filter(
          (candidate) =>
            candidate.grant === decision.grant && candidate.attachment === decision.attachment,
        );
        const holdsEntitlement = (grant: ReferenceGrant) =>
          entitlementsOf(policy, request.invoker ?? '')
            .filter(
              (entitlement) =>
                entitlement.connection === undefined || entitlement.connection === grant.connection,
            )
            .some(matches);
        const allowing = candidates.filter(
          (grant) =>
            matches(grant) &&
            !grant.approval &&
            (grant.until === undefined || Date.parse(grant.until) > NOW) &&
            (grant.agents === undefined || grant.agents.includes(request.agent)) &&
            (!grant.identityAware || holdsEntitlement(grant)),
        );
        expect(candidates.length).toBeGreaterThan(0);
        expect(allowing.length).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('guardrails', () => {
  it('always win', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), ([policy, request]) => {
        fc.pre(isValidAction(request.action) && isValidResource(request.resource));
        const before = decideUnder(policy, request);
        const guarded = withGuardrail(policy, {
          id: 'added',
          actions: [request.action],
          resources: [request.resource],
        });
        const after = decideUnder(guarded, request);

        expect(after.allowed).toBe(false);
        // A decision that got past the invoker checks now stops at a guardrail.
        const reachedGuardrails =
          before.reason === 'granted' ||
          before.reason === 'forbidden_by_guardrail' ||
          before.reason === 'memory_compartment' ||
          before.reason === 'approval_required' ||
          before.reason === 'invoker_lacks_permission' ||
          before.reason === 'no_matching_grant' ||
          (before.reason === 'invoker_required' && before.grant !== null);
        if (reachedGuardrails) {
          expect(after.reason).toBe('forbidden_by_guardrail');
          expect(after.guardrail).toBe(before.guardrail ?? 'added');
          expect(after.grant).toBeNull();
        } else {
          expect(comparable(after)).toEqual(comparable(before));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('stay within their visibility', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), ([policy, request]) => {
        fc.pre(isValidAction(request.action) && isValidResource(request.resource));
        const visibility = scopeVisibility(policy, request);
        const elsewhere = (['workspace', 'public', 'private', 'dm'] as const).filter(
          (candidate) => candidate !== visibility,
        );
        const guarded = withGuardrail(policy, {
          id: 'elsewhere',
          actions: ['**'],
          resources: ['**'],
          visibility: elsewhere,
        });

        expect(comparable(decideUnder(guarded, request))).toEqual(
          comparable(decideUnder(policy, request)),
        );
      }),
      { numRuns: RUNS },
    );
  });
});

describe('invoker independence', () => {
  const invoker = fc.constantFrom('m1', 'm2', 'm3');

  it('agent grants ignore who asked', () => {
    fc.assert(
      fc.property(
        scenarioArbitrary({ agentOnly: true }),
        invoker,
        invoker,
        ([policy, request], first, second) => {
          const firstDecision = decideUnder(policy, { ...request, invoker: first });
          const secondDecision = decideUnder(policy, { ...request, invoker: second });
          fc.pre(
            firstDecision.reason !== 'invoker_not_permitted' &&
              secondDecision.reason !== 'invoker_not_permitted',
          );

          expect(comparable(firstDecision)).toEqual(comparable(secondDecision));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('only identity-aware grants differ', () => {
    fc.assert(
      fc.property(scenarioArbitrary(), invoker, invoker, ([policy, request], a, b) => {
        const firstDecision = decideUnder(policy, { ...request, invoker: a });
        const secondDecision = decideUnder(policy, { ...request, invoker: b });
        fc.pre(
          firstDecision.reason !== 'invoker_not_permitted' &&
            secondDecision.reason !== 'invoker_not_permitted',
        );
        if (
          JSON.stringify(comparable(firstDecision)) === JSON.stringify(comparable(secondDecision))
        )
          return;

        const identityAware = new Set(
          scopeGrants(policy, request.channel)
            .filter((grant) => grant.identityAware)
            .map((grant) => `${grant.attachment} ${grant.grant}`),
        );
        const involved = [firstDecision, secondDecision].some(
          (decision) =>
            decision.reason === 'invoker_lacks_permission' ||
            identityAware.has(`${decision.attachment} ${decision.grant}`),
        );
        expect(involved).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('unexpected input', () => {
  const awkwardText = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 12 }),
    fc.string({
      unit: fc.constantFrom('a', 'A', '/', '.', ':', '*', 'é', 'e\u0301', '\u200b', '\u0000', ' '),
      maxLength: 12,
    }),
  );

  it('random text agrees with the evaluator', () => {
    const request = fc.record({
      workspace: fc.constant('w'),
      agent: fc.constantFrom('a1', 'a2'),
      channel: fc.option(fc.oneof(fc.constantFrom('ch1', 'dm:m1'), awkwardText), {
        nil: undefined,
      }),
      invoker: fc.option(fc.oneof(fc.constantFrom('m1', 'm2'), awkwardText), { nil: undefined }),
      action: fc.oneof(fc.constantFrom(...REQUEST_ACTIONS), awkwardText),
      resource: fc.oneof(
        fc.constantFrom(...REQUEST_RESOURCES),
        awkwardText,
        awkwardText.map((text) => `repo:${text}`),
        awkwardText.map((text) => `memory:${text}`),
      ),
    });

    fc.assert(
      fc.property(policyArbitrary(), request, (policy, generated) => {
        const { channel, invoker, ...rest } = generated;
        const cleaned: DecisionRequest = {
          ...rest,
          ...(channel === undefined ? {} : { channel }),
          ...(invoker === undefined ? {} : { invoker }),
        };
        expectAgreement(policy, cleaned);
      }),
      { numRuns: RUNS },
    );
  });

  it('wrong field types are denied', () => {
    const field = (valid: fc.Arbitrary<string>) => fc.oneof(valid, fc.anything());
    const optionalField = (valid: fc.Arbitrary<string>) =>
      fc.oneof(fc.constant(undefined), valid, fc.anything());
    const request = fc.record({
      workspace: field(fc.constant('w')),
      agent: field(fc.constant('a1')),
      channel: optionalField(fc.constantFrom('ch1', 'dm:m1')),
      invoker: optionalField(fc.constant('m1')),
      action: field(fc.constantFrom(...REQUEST_ACTIONS)),
      resource: field(fc.constantFrom(...REQUEST_RESOURCES)),
    });

    fc.assert(
      fc.property(policyArbitrary(), request, (policy, generated) => {
        const wrongTypes = Object.entries(generated).filter(
          ([key, value]) =>
            typeof value !== 'string' &&
            !((key === 'invoker' || key === 'channel') && value === undefined),
        );
        fc.pre(wrongTypes.length > 0);

        const decision = decideUnder(policy, generated as unknown as DecisionRequest);

        expect(decision.allowed).toBe(false);
        expect(decision.reason).toBe('invalid_request');
      }),
      { numRuns: RUNS },
    );
  });

  const samplePolicy = fc.sample(policyArbitrary(), { numRuns: 1, seed: 1 })[0] as Policy;
  const base = { workspace: 'w', agent: 'a1', action: 'repo.read', resource: 'repo:acme/api' };

  it.each([null, 5, {}, ['ch1']])('channel %j is invalid', (channel) => {
    const request = { ...base, channel } as unknown as DecisionRequest;
    const decision = decideUnder(samplePolicy, request);

    expect(decision.allowed).toBe(false);
    expect(decision.reason).toBe('invalid_request');
  });

  it.each([null, 'request', 7])('request %j is invalid', (request) => {
    const decision = decide(undefined, request as unknown as DecisionRequest);

    expect(decision.allowed).toBe(false);
    expect(decision.reason).toBe('invalid_request');
  });

  // PolicyEngine.decide reads request.workspace before the shape check in decide() runs.
  it('engine denies a null request', () => {
    const engine = new PolicyEngine();
    engine.load(samplePolicy, 1);

    expect(engine.decide(null as unknown as DecisionRequest).reason).toBe('invalid_request');
  });
});
