import { afterEach, describe, expect, it } from 'vitest';

import { decide, onEvaluationError } from '../../src/engine/decide.js';
import { REASONS, type Reason } from '../../src/engine/reasons.js';
import type { Decision, DecisionRequest } from '../../src/engine/types.js';
import { acmeWithoutDms, engineFor, extendedAcme, loadAcme } from './acme.js';

/** A fixed clock before the `incident-write` attachment ends on 2027-01-31T23:59:59Z. */
const NOW = Date.parse('2026-06-01T00:00:00Z');
const INCIDENT_UNTIL = Date.parse('2027-01-31T23:59:59Z');

const engines = {
  acme: engineFor(loadAcme()),
  extended: engineFor(extendedAcme),
  'no-dms': engineFor(acmeWithoutDms),
};

type Outcome = Pick<
  Decision,
  'allowed' | 'reason' | 'identity' | 'bundle' | 'attachment' | 'grant' | 'connection' | 'guardrail'
>;

type GrantFields = Pick<Outcome, 'bundle' | 'attachment' | 'grant' | 'connection'>;

function outcome(reason: Reason, identity: string | null, fields: Partial<Outcome> = {}): Outcome {
  return {
    allowed: reason === 'granted',
    reason,
    identity,
    bundle: null,
    attachment: null,
    grant: null,
    connection: null,
    guardrail: null,
    ...fields,
  };
}

function pick(decision: Decision): Outcome {
  const { allowed, reason, identity, bundle, attachment, grant, connection, guardrail } = decision;
  return { allowed, reason, identity, bundle, attachment, grant, connection, guardrail };
}

const HELPER = 'agent:helper';
const LEGAL = 'agent:helper/channel:C04LEGAL';
const SALES = 'agent:helper/channel:C05SALES';
const PIPELINE = 'agent:helper/channel:C08PIPELINE';

const ALICE = 'U01ALICE';
const BOB = 'U02BOB';
const CAROL = 'U03CAROL';
const DAVE = 'U04DAVE';

function grantOf(attachment: string, grant: string, connection: string | null): GrantFields {
  const bundle = attachment.slice(attachment.lastIndexOf('/') + 1);
  return { bundle, attachment, grant, connection };
}

const readHandbook = grantOf('workspace/baseline', 'read-handbook', 'github');
const codeRead = grantOf('channel:C02ENG/engineering', 'code-read', 'github');
const codeWrite = grantOf('channel:C02ENG/engineering', 'code-write', 'github');
const infraAdmin = grantOf('channel:C02ENG/engineering', 'infra-admin', 'github');
const warehouseRead = grantOf('channel:C03DATA/analytics', 'warehouse-read', 'warehouse');
const warehouseWrite = grantOf('channel:C03DATA/incident-write', 'warehouse-write', 'warehouse');
const contractsRead = grantOf('channel:C04LEGAL/legal-docs', 'contracts-read', 'github');
const crmRead = grantOf('channel:C05SALES/crm', 'crm-read', 'crm');
const crmWrite = grantOf('channel:C05SALES/crm', 'crm-write', 'crm');

interface Row {
  name: string;
  engine?: keyof typeof engines;
  request: Partial<DecisionRequest> & Pick<DecisionRequest, 'action' | 'resource'>;
  expected: Outcome;
}

const rows: Row[] = [
  // Request validity comes first.
  {
    name: 'empty action segment',
    request: { action: 'repo..read', resource: 'repo:acme/api' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'non-ASCII action',
    request: { action: 'repö.read', resource: 'repo:acme/api' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'empty resource segment',
    request: { action: 'repo.read', resource: 'repo:acme//handbook' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'uppercase resource type',
    request: { action: 'repo.read', resource: 'REPO:acme/handbook' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'star in a request resource',
    request: { action: 'repo.read', resource: 'repo:acme/*' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'dot-dot segment',
    request: { action: 'repo.read', resource: 'repo:acme/x/../handbook' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'zero-width space around guardrail',
    request: { action: 'repo.read', resource: 'repo:acme/secr\u200bets' },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'NFD resource path',
    request: { action: 'repo.read', resource: 'repo:acme/cafe\u0301' },
    expected: outcome('invalid_request', null),
  },

  // Workspace and agent.
  {
    name: 'unknown workspace',
    request: { workspace: 'globex', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('agent_unknown', null),
  },
  {
    name: 'unknown agent',
    request: { agent: 'intruder', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('agent_unknown', null),
  },
  {
    name: 'agent id is case-sensitive',
    request: { agent: 'Helper', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('agent_unknown', null),
  },
  {
    name: 'disabled agent',
    engine: 'extended',
    request: { agent: 'retired', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('agent_disabled', null),
  },

  // Scope.
  {
    name: 'unknown channel',
    request: { channel: 'C99NOPE', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('scope_unknown', null),
  },
  {
    name: 'DM with unknown member',
    request: { channel: 'dm:U99NOBODY', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('scope_unknown', null),
  },
  {
    name: 'shared channel excluded',
    request: {
      channel: 'C06PARTNER',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/api',
    },
    expected: outcome('channel_excluded', null),
  },
  {
    name: 'DMs disabled',
    engine: 'no-dms',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/api',
    },
    expected: outcome('dms_disabled', null),
  },

  // Invokers.
  {
    name: 'non-engineer in engineering channel',
    request: { channel: 'C02ENG', invoker: CAROL, action: 'repo.read', resource: 'repo:acme/api' },
    expected: outcome('invoker_not_permitted', HELPER),
  },
  {
    name: 'private member not an invoker',
    request: {
      channel: 'C04LEGAL',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/contracts',
    },
    expected: outcome('invoker_not_permitted', LEGAL),
  },
  {
    name: 'non-member in private channel',
    request: {
      channel: 'C05SALES',
      invoker: ALICE,
      action: 'crm.read',
      resource: 'crm:accounts/globex',
    },
    expected: outcome('invoker_not_permitted', SALES),
  },
  {
    name: 'stranger in workspace scope',
    request: { invoker: 'U99GHOST', action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('invoker_not_permitted', HELPER),
  },
  {
    name: 'stranger in public channel',
    request: {
      channel: 'C01GENERAL',
      invoker: 'U99GHOST',
      action: 'repo.read',
      resource: 'repo:acme/handbook',
    },
    expected: outcome('invoker_not_permitted', HELPER),
  },
  {
    name: 'other member in a DM',
    request: {
      channel: `dm:${ALICE}`,
      invoker: BOB,
      action: 'repo.read',
      resource: 'repo:acme/api',
    },
    expected: outcome('invoker_not_permitted', `member:${ALICE}`),
  },
  {
    name: 'unattended private channel',
    request: { channel: 'C04LEGAL', action: 'repo.read', resource: 'repo:acme/contracts' },
    expected: outcome('invoker_required', LEGAL),
  },
  {
    name: 'unattended DM',
    request: { channel: `dm:${ALICE}`, action: 'repo.read', resource: 'repo:acme/api' },
    expected: outcome('invoker_required', `member:${ALICE}`),
  },
  {
    name: 'identity-aware grant unattended',
    request: { channel: 'C02ENG', action: 'repo.write', resource: 'repo:acme/api' },
    expected: outcome('invoker_required', HELPER, codeWrite),
  },
  {
    name: 'identity-aware CRM write unattended',
    request: { channel: 'C05SALES', action: 'crm.write', resource: 'crm:opportunities/globex' },
    expected: outcome('invoker_required', SALES, crmWrite),
  },

  // Guardrails.
  {
    name: 'secrets repo in engineering',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/secrets',
    },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-secrets-repo' }),
  },
  {
    name: 'secrets repo in other case',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/Secrets',
    },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-secrets-repo' }),
  },
  {
    name: 'secrets repo uppercase action',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'REPO.READ',
      resource: 'repo:ACME/SECRETS',
    },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-secrets-repo' }),
  },
  {
    name: 'secrets repo in a DM',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/secrets',
    },
    expected: outcome('forbidden_by_guardrail', `member:${ALICE}`, {
      guardrail: 'no-secrets-repo',
    }),
  },
  {
    name: 'payroll table',
    request: {
      channel: 'C03DATA',
      action: 'table.read',
      resource: 'table:analytics/finance/payroll',
    },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-payroll' }),
  },
  {
    name: 'CRM write in public channel',
    request: {
      channel: 'C01GENERAL',
      invoker: DAVE,
      action: 'crm.write',
      resource: 'crm:opportunities/globex-renewal',
    },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-crm-writes-in-public' }),
  },
  {
    name: 'CRM write in workspace scope',
    request: { action: 'crm.write', resource: 'crm:accounts/globex' },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-crm-writes-in-public' }),
  },
  {
    name: 'guardrail ahead of memory',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'crm.write',
      resource: 'crm:memory/notes',
    },
    expected: outcome('forbidden_by_guardrail', HELPER, { guardrail: 'no-crm-writes-in-public' }),
  },

  // Memory compartments.
  {
    name: 'workspace writes workspace memory',
    request: { action: 'memory.write', resource: 'memory:workspace' },
    expected: outcome('granted', HELPER),
  },
  {
    name: 'public channel reads workspace memory',
    request: {
      channel: 'C01GENERAL',
      invoker: BOB,
      action: 'memory.read',
      resource: 'memory:workspace',
    },
    expected: outcome('granted', HELPER),
  },
  {
    name: 'public channel reads private memory',
    request: {
      channel: 'C01GENERAL',
      invoker: BOB,
      action: 'memory.read',
      resource: 'memory:C04LEGAL',
    },
    expected: outcome('memory_compartment', HELPER),
  },
  {
    name: 'private channel writes own memory',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'memory.write',
      resource: 'memory:C04LEGAL',
    },
    expected: outcome('granted', LEGAL),
  },
  {
    name: 'private channel reads workspace memory',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'memory.read',
      resource: 'memory:workspace',
    },
    expected: outcome('granted', LEGAL),
  },
  {
    name: 'private channel writes workspace memory',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'memory.write',
      resource: 'memory:workspace',
    },
    expected: outcome('memory_compartment', LEGAL),
  },
  {
    name: 'private channel reads another private',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'memory.read',
      resource: 'memory:C05SALES',
    },
    expected: outcome('memory_compartment', LEGAL),
  },
  {
    name: 'DM writes own memory',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'memory.write',
      resource: `memory:dm:${ALICE}`,
    },
    expected: outcome('granted', `member:${ALICE}`),
  },
  {
    name: 'DM reads workspace memory',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'memory.read',
      resource: 'memory:workspace',
    },
    expected: outcome('memory_compartment', `member:${ALICE}`),
  },
  {
    name: 'DM reads another DM',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'memory.read',
      resource: `memory:dm:${BOB}`,
    },
    expected: outcome('memory_compartment', `member:${ALICE}`),
  },
  {
    name: 'memory action other than read/write',
    request: { action: 'memory.delete', resource: 'memory:workspace' },
    expected: outcome('memory_compartment', HELPER),
  },
  {
    name: 'memory grant cannot widen reads',
    engine: 'extended',
    request: {
      channel: 'C01GENERAL',
      invoker: BOB,
      action: 'memory.read',
      resource: 'memory:C04LEGAL',
    },
    expected: outcome('memory_compartment', HELPER),
  },
  {
    name: 'memory grant cannot widen writes',
    engine: 'extended',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'memory.write',
      resource: 'memory:workspace',
    },
    expected: outcome('memory_compartment', LEGAL),
  },
  {
    name: 'memory grant cannot add actions',
    engine: 'extended',
    request: { action: 'memory.delete', resource: 'memory:workspace' },
    expected: outcome('memory_compartment', HELPER),
  },

  // Grants in the workspace scope and public channels.
  {
    name: 'handbook in workspace scope',
    request: { action: 'repo.read', resource: 'repo:acme/handbook' },
    expected: outcome('granted', HELPER, readHandbook),
  },
  {
    name: 'handbook inherited by public channel',
    request: {
      channel: 'C01GENERAL',
      invoker: CAROL,
      action: 'issue.read',
      resource: 'repo:acme/handbook',
    },
    expected: outcome('granted', HELPER, readHandbook),
  },
  {
    name: 'handbook in other case',
    request: { action: 'Repo.Read', resource: 'repo:Acme/Handbook' },
    expected: outcome('granted', HELPER, readHandbook),
  },
  {
    name: 'handbook write not granted',
    request: { action: 'repo.write', resource: 'repo:acme/handbook' },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'domain grant',
    request: { action: 'web.fetch', resource: 'host:docs.acme.example' },
    expected: outcome('granted', HELPER, {
      ...grantOf('workspace/baseline', 'baseline#domain:docs.acme.example', null),
    }),
  },
  {
    name: 'domain grant in other case',
    request: { action: 'web.fetch', resource: 'host:STATUS.Acme.Example' },
    expected: outcome('granted', HELPER, {
      ...grantOf('workspace/baseline', 'baseline#domain:status.acme.example', null),
    }),
  },
  {
    name: 'subdomain of a domain grant',
    request: { action: 'web.fetch', resource: 'host:evil.docs.acme.example' },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'tool grant',
    request: { action: 'tool.call', resource: 'tool:files/read_text_file' },
    expected: outcome(
      'granted',
      HELPER,
      grantOf('workspace/baseline', 'baseline#tool:files/read_text_file', null),
    ),
  },
  {
    name: 'tool wildcard grant',
    request: {
      channel: 'C02ENG',
      invoker: BOB,
      action: 'tool.call',
      resource: 'tool:github/issues/create',
    },
    expected: outcome(
      'granted',
      HELPER,
      grantOf('channel:C02ENG/engineering', 'engineering#tool:github/**', null),
    ),
  },
  {
    name: 'tool wildcard needs a segment',
    request: { channel: 'C02ENG', invoker: BOB, action: 'tool.call', resource: 'tool:github' },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'tool name is case-sensitive',
    request: { action: 'tool.call', resource: 'tool:Search/web' },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'id-less grant named by index',
    engine: 'extended',
    request: { action: 'wiki.edit', resource: 'wiki:acme/onboarding' },
    expected: outcome('granted', HELPER, grantOf('workspace/wiki', 'wiki#1', null)),
  },
  {
    name: 'explicit grant id kept',
    engine: 'extended',
    request: { action: 'wiki.read', resource: 'wiki:acme/onboarding' },
    expected: outcome('granted', HELPER, grantOf('workspace/wiki', 'wiki-read', null)),
  },

  // The engineering channel.
  {
    name: 'code read in engineering',
    request: { channel: 'C02ENG', invoker: ALICE, action: 'repo.read', resource: 'repo:acme/api' },
    expected: outcome('granted', HELPER, codeRead),
  },
  {
    name: 'channel grant before inherited',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/handbook',
    },
    expected: outcome('granted', HELPER, codeRead),
  },
  {
    name: 'action wildcard segment',
    request: {
      channel: 'C02ENG',
      invoker: BOB,
      action: 'issue.write',
      resource: 'repo:acme/web',
    },
    expected: outcome('granted', HELPER, codeRead),
  },
  {
    name: 'star spans one segment only',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme/api/x',
    },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'star needs a segment',
    request: { channel: 'C02ENG', invoker: ALICE, action: 'repo.read', resource: 'repo:acme' },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'look-alike owner prefix',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:acme-evil/api',
    },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'fullwidth look-alike repo',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.read',
      resource: 'repo:ａｃｍｅ/api',
    },
    expected: outcome('invalid_request', null),
  },
  {
    name: 'identity-aware write by engineer',
    request: {
      channel: 'C02ENG',
      invoker: BOB,
      action: 'repo.write',
      resource: 'repo:acme/api',
    },
    expected: outcome('granted', HELPER, codeWrite),
  },
  {
    name: 'approval for infra admin',
    request: {
      channel: 'C02ENG',
      invoker: ALICE,
      action: 'repo.admin',
      resource: 'repo:acme/infra',
    },
    expected: outcome('approval_required', HELPER, infraAdmin),
  },
  {
    name: 'infra admin outside engineering',
    request: {
      channel: 'C01GENERAL',
      invoker: ALICE,
      action: 'repo.admin',
      resource: 'repo:acme/infra',
    },
    expected: outcome('no_matching_grant', HELPER),
  },

  // The data channel.
  {
    name: 'warehouse read',
    request: {
      channel: 'C03DATA',
      invoker: ALICE,
      action: 'table.read',
      resource: 'table:analytics/public/orders',
    },
    expected: outcome('granted', HELPER, warehouseRead),
  },
  {
    name: 'table path keeps its case',
    request: {
      channel: 'C03DATA',
      action: 'table.read',
      resource: 'table:analytics/public/Orders',
    },
    expected: outcome('granted', HELPER, warehouseRead),
  },
  {
    name: 'table type is case-sensitive',
    request: {
      channel: 'C03DATA',
      action: 'table.read',
      resource: 'table:Analytics/public/orders',
    },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'time-boxed write before end',
    request: {
      channel: 'C03DATA',
      action: 'table.write',
      resource: 'table:analytics/public/orders',
    },
    expected: outcome('granted', HELPER, warehouseWrite),
  },
  {
    name: 'time-boxed write other table',
    request: {
      channel: 'C03DATA',
      action: 'table.write',
      resource: 'table:analytics/public/customers',
    },
    expected: outcome('no_matching_grant', HELPER),
  },

  // Private channels.
  {
    name: 'contracts in legal channel',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'repo.read',
      resource: 'repo:acme/contracts',
    },
    expected: outcome('granted', LEGAL, contractsRead),
  },
  {
    name: 'private channel inherits workspace',
    request: {
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'repo.read',
      resource: 'repo:acme/handbook',
    },
    expected: outcome('granted', LEGAL, readHandbook),
  },
  {
    name: 'CRM read in sales',
    request: {
      channel: 'C05SALES',
      invoker: DAVE,
      action: 'crm.read',
      resource: 'crm:accounts/globex',
    },
    expected: outcome('granted', SALES, crmRead),
  },
  {
    name: 'CRM read unattended in sales',
    request: { channel: 'C05SALES', action: 'crm.read', resource: 'crm:accounts/initech' },
    expected: outcome('granted', SALES, crmRead),
  },
  {
    name: 'CRM write by salesperson',
    request: {
      channel: 'C05SALES',
      invoker: DAVE,
      action: 'crm.write',
      resource: 'crm:opportunities/globex-renewal',
    },
    expected: outcome('granted', SALES, crmWrite),
  },
  {
    name: 'CRM write on accounts',
    request: {
      channel: 'C05SALES',
      invoker: DAVE,
      action: 'crm.write',
      resource: 'crm:accounts/globex',
    },
    expected: outcome('no_matching_grant', SALES),
  },
  {
    name: 'invoker lacks the entitlement',
    engine: 'extended',
    request: {
      channel: 'C08PIPELINE',
      invoker: ALICE,
      action: 'crm.write',
      resource: 'crm:opportunities/globex-renewal',
    },
    expected: outcome(
      'invoker_lacks_permission',
      PIPELINE,
      grantOf('channel:C08PIPELINE/crm', 'crm-write', 'crm'),
    ),
  },
  {
    name: 'invoker holds the entitlement',
    engine: 'extended',
    request: {
      channel: 'C08PIPELINE',
      invoker: DAVE,
      action: 'crm.write',
      resource: 'crm:opportunities/globex-renewal',
    },
    expected: outcome('granted', PIPELINE, grantOf('channel:C08PIPELINE/crm', 'crm-write', 'crm')),
  },
  {
    name: 'attachment for listed agent',
    engine: 'extended',
    request: {
      channel: 'C08PIPELINE',
      action: 'table.read',
      resource: 'table:analytics/public/orders',
    },
    expected: outcome(
      'granted',
      PIPELINE,
      grantOf('channel:C08PIPELINE/analytics', 'warehouse-read', 'warehouse'),
    ),
  },
  {
    name: 'attachment skips unlisted agent',
    engine: 'extended',
    request: {
      agent: 'scout',
      channel: 'C08PIPELINE',
      action: 'table.read',
      resource: 'table:analytics/public/orders',
    },
    expected: outcome('no_matching_grant', 'agent:scout/channel:C08PIPELINE'),
  },

  // Inheritance.
  {
    name: 'no inheritance in random',
    request: {
      channel: 'C07RANDOM',
      invoker: BOB,
      action: 'repo.read',
      resource: 'repo:acme/handbook',
    },
    expected: outcome('no_matching_grant', HELPER),
  },
  {
    name: 'no inherited tools in random',
    request: { channel: 'C07RANDOM', action: 'tool.call', resource: 'tool:files/read_text_file' },
    expected: outcome('no_matching_grant', HELPER),
  },

  // DMs decide on the member's own entitlements.
  {
    name: 'DM personal entitlement',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'repo.admin',
      resource: 'repo:acme/infra',
    },
    expected: outcome('granted', `member:${ALICE}`, {
      grant: `member:${ALICE}#0`,
      connection: 'github',
    }),
  },
  {
    name: 'DM group entitlement',
    request: {
      channel: `dm:${BOB}`,
      invoker: BOB,
      action: 'table.write',
      resource: 'table:analytics/public/orders',
    },
    expected: outcome('granted', `member:${BOB}`, {
      grant: 'group:data#0',
      connection: 'warehouse',
    }),
  },
  {
    name: 'DM deep path under entitlement',
    request: {
      channel: `dm:${ALICE}`,
      invoker: ALICE,
      action: 'repo.write',
      resource: 'repo:acme/api/branches/main',
    },
    expected: outcome('granted', `member:${ALICE}`, {
      grant: 'group:engineering#0',
      connection: 'github',
    }),
  },
  {
    name: 'DM ignores bundle grants',
    request: {
      channel: `dm:${CAROL}`,
      invoker: CAROL,
      action: 'repo.read',
      resource: 'repo:acme/handbook',
    },
    expected: outcome('no_matching_grant', `member:${CAROL}`),
  },
  {
    name: 'DM CRM write outside public',
    request: {
      channel: `dm:${DAVE}`,
      invoker: DAVE,
      action: 'crm.write',
      resource: 'crm:accounts/globex',
    },
    expected: outcome('granted', `member:${DAVE}`, { grant: 'group:sales#0', connection: 'crm' }),
  },
];

describe('acme decisions', () => {
  it.each(rows)('$name', ({ engine = 'acme', request, expected }) => {
    const decision = engines[engine].decide(
      { workspace: 'acme', agent: 'helper', ...request },
      NOW,
    );
    expect(pick(decision)).toEqual(expected);
  });

  it('cover every policy reason', () => {
    // Every reason the policy itself can produce; evaluation errors are tested below.
    const policyReasons: Reason[] = [
      'granted',
      'agent_unknown',
      'agent_disabled',
      'scope_unknown',
      'channel_excluded',
      'dms_disabled',
      'invoker_not_permitted',
      'invoker_required',
      'invoker_lacks_permission',
      'forbidden_by_guardrail',
      'approval_required',
      'memory_compartment',
      'no_matching_grant',
      'invalid_request',
    ];
    const covered = new Set(rows.map((row) => row.expected.reason));

    expect(policyReasons.filter((reason) => !covered.has(reason))).toEqual([]);
    expect(policyReasons.filter((reason) => !REASONS.includes(reason))).toEqual([]);
  });
});

describe('acme decision fields', () => {
  const engine = engines.acme;

  it('echoes the request', () => {
    const request = {
      workspace: 'acme',
      agent: 'helper',
      channel: 'C04LEGAL',
      invoker: CAROL,
      action: 'Repo.Read',
      resource: 'repo:acme/contracts',
    };
    const decision = engine.decide(request, NOW);

    expect(decision.workspace).toBe('acme');
    expect(decision.agent).toBe('helper');
    expect(decision.scope).toBe('channel:C04LEGAL');
    expect(decision.invoker).toBe(CAROL);
    expect(decision.action).toBe('Repo.Read');
    expect(decision.resource).toBe('repo:acme/contracts');
    expect(decision.revision).toBe(1);
    expect(decision.detail).toBeNull();
  });

  it('names workspace and DM scopes', () => {
    const inWorkspace = engine.decide(
      { workspace: 'acme', agent: 'helper', action: 'repo.read', resource: 'repo:acme/handbook' },
      NOW,
    );
    const inDm = engine.decide(
      {
        workspace: 'acme',
        agent: 'helper',
        channel: `dm:${ALICE}`,
        action: 'repo.read',
        resource: 'repo:acme/api',
      },
      NOW,
    );

    expect(inWorkspace.scope).toBe('workspace');
    expect(inWorkspace.invoker).toBeNull();
    expect(inDm.scope).toBe(`dm:${ALICE}`);
  });

  it('explains an invalid request', () => {
    const decision = engine.decide(
      { workspace: 'acme', agent: 'helper', action: 'repo.read', resource: 'repo:acme//api' },
      NOW,
    );

    expect(decision.reason).toBe('invalid_request');
    expect(decision.detail).toBe('resource path has an empty segment');
  });

  it('reports revision 0 without workspace', () => {
    const decision = engine.decide(
      { workspace: 'globex', agent: 'helper', action: 'repo.read', resource: 'repo:acme/api' },
      NOW,
    );

    expect(decision.revision).toBe(0);
    expect(decision.workspace).toBe('globex');
  });

  it('gives each decision its own id', () => {
    const request = {
      workspace: 'acme',
      agent: 'helper',
      action: 'repo.read',
      resource: 'repo:acme/handbook',
    };
    const other = engineFor(loadAcme());
    const ids = Array.from(
      { length: 200 },
      (_, index) => (index % 2 === 0 ? engine : other).decide(request, NOW).decisionId,
    );

    expect(new Set(ids).size).toBe(200);
    for (const id of ids) expect(id).toMatch(/^\S{16,}$/);
  });

  // invalid_request comes before the workspace lookup, so a malformed resource never gets
  // agent_unknown just because the workspace is unknown.
  it('invalid before unknown workspace', () => {
    const decision = engine.decide(
      { workspace: 'globex', agent: 'helper', action: 'repo.read', resource: 'repo:acme//api' },
      NOW,
    );

    expect(decision.reason).toBe('invalid_request');
  });
});

describe('time-boxed attachment', () => {
  const engine = engines.acme;
  const request = {
    workspace: 'acme',
    agent: 'helper',
    channel: 'C03DATA',
    invoker: BOB,
    action: 'table.write',
    resource: 'table:analytics/public/orders',
  };

  it('grants one millisecond before', () => {
    const decision = engine.decide(request, INCIDENT_UNTIL - 1);

    expect(decision.reason).toBe('granted');
    expect(decision.grant).toBe('warehouse-write');
    expect(decision.attachment).toBe('channel:C03DATA/incident-write');
  });

  it('grants nothing at the end', () => {
    const decision = engine.decide(request, INCIDENT_UNTIL);

    expect(decision.reason).toBe('no_matching_grant');
    expect(decision.grant).toBeNull();
  });

  it('grants nothing after the end', () => {
    const decision = engine.decide(request, INCIDENT_UNTIL + 1);

    expect(decision.reason).toBe('no_matching_grant');
    expect(decision.grant).toBeNull();
  });

  it('leaves other attachments alone', () => {
    const decision = engine.decide(
      { ...request, action: 'table.read', resource: 'table:analytics/public/orders' },
      INCIDENT_UNTIL + 1,
    );

    expect(decision.reason).toBe('granted');
    expect(decision.grant).toBe('warehouse-read');
  });

  it('uses the current time by default', () => {
    // The attachment ends in 2027, so the default clock must still grant before then.
    expect(Date.now()).toBeLessThan(INCIDENT_UNTIL);
    expect(engine.decide(request).reason).toBe('granted');
  });

  // A clock that is not a number must not make a time-boxed attachment last forever.
  it('invalid clock grants nothing', () => {
    const decision: Decision = engine.decide(request, Number.NaN);

    expect(decision.allowed).toBe(false);
    expect(decision.reason).toBe('evaluation_error');
  });
});

describe('action cache', () => {
  it('decides correctly past its limit', () => {
    const engine = engineFor(loadAcme());
    const base = { workspace: 'acme', agent: 'helper', channel: 'C02ENG', invoker: ALICE };
    for (let index = 0; index < 5000; index++) {
      engine.decide({ ...base, action: `noise.a${index}`, resource: 'repo:acme/api' }, NOW);
    }

    const read = engine.decide({ ...base, action: 'repo.read', resource: 'repo:acme/api' }, NOW);
    const secret = engine.decide(
      { ...base, action: 'repo.read', resource: 'repo:acme/secrets' },
      NOW,
    );

    expect(read.reason).toBe('granted');
    expect(read.grant).toBe('code-read');
    expect(secret.reason).toBe('forbidden_by_guardrail');
    expect(secret.guardrail).toBe('no-secrets-repo');
  });
});

describe('evaluation errors', () => {
  afterEach(() => {
    onEvaluationError(() => {});
  });

  const request = {
    workspace: 'acme',
    agent: 'helper',
    invoker: ALICE,
    action: 'repo.read',
    resource: 'repo:acme/handbook',
  };

  function brokenWorkspace() {
    const workspace = engines.acme.workspace('acme');
    if (workspace === undefined) throw new Error('acme is not loaded');
    // A members index that throws simulates any fault inside the evaluation.
    return { ...workspace, members: null as unknown as typeof workspace.members };
  }

  it('fails closed', () => {
    const errors: unknown[] = [];
    onEvaluationError((error) => errors.push(error));

    const decision = decide(brokenWorkspace(), request, NOW);

    expect(decision.allowed).toBe(false);
    expect(decision.reason).toBe('evaluation_error');
    expect(decision.detail).toBe('internal error while evaluating');
    expect(decision.identity).toBeNull();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TypeError);
  });

  it('survives a throwing error handler', () => {
    onEvaluationError(() => {
      throw new Error('logger down');
    });

    const decision = decide(brokenWorkspace(), request, NOW);

    expect(decision.reason).toBe('evaluation_error');
  });
});
