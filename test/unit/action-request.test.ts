/**
 * POST /api/actions' body (domain/action.ts): Warden's shape, and the seed system's, whose clients
 * put the operation inside the parameters or leave it out where a skill has only one.
 */
import { expect, it } from 'vitest';
import { submitActionRequestSchema } from '../../domain/action.js';
import { SKILLS } from '../../skills/index.js';

const SubmitActionRequestSchema = submitActionRequestSchema(SKILLS);

const base = { action_type: 'skill_execution', agent_id: 'agent-1' } as const;

it("takes the operation from the top level, from parameters.operation, or the skill's only one", () => {
  expect(SubmitActionRequestSchema.parse({ ...base, skill_id: 'filesystem', operation: 'read', parameters: { path: 'a' } })).toMatchObject({
    operation: 'read',
    parameters: { path: 'a' },
  });
  // The seed's shape: the operation leaves the parameters, which the skill's schema then checks.
  expect(SubmitActionRequestSchema.parse({ ...base, skill_id: 'filesystem', parameters: { operation: 'read', path: 'a' } })).toMatchObject({
    operation: 'read',
    parameters: { path: 'a' },
  });
  expect(SubmitActionRequestSchema.parse({ ...base, skill_id: 'shell', parameters: { command: 'ls' } })).toMatchObject({
    operation: 'exec',
    parameters: { command: 'ls' },
  });
});

it("says where the operation goes when it cannot tell, naming the skill's operations", () => {
  const missing = SubmitActionRequestSchema.safeParse({ ...base, skill_id: 'filesystem', parameters: { path: 'a' } });
  expect(missing.success).toBe(false);
  expect(missing.error!.issues[0]).toMatchObject({
    path: ['operation'],
    message: expect.stringMatching(
      /^operation: required, at the top level or as parameters\.operation \(filesystem has read, write, .*delete/,
    ),
  });
  const unknownSkill = SubmitActionRequestSchema.safeParse({ ...base, skill_id: 'rootkit', parameters: {} });
  expect(unknownSkill.error!.issues[0]!.message).toBe('operation: required, at the top level or as parameters.operation');
  const bad = SubmitActionRequestSchema.safeParse({ ...base, skill_id: 'filesystem', parameters: { operation: 'Read; rm' } });
  expect(bad.error!.issues[0]).toMatchObject({
    path: ['parameters', 'operation'],
    message: expect.stringMatching(/^operation: a lower-case name/),
  });
  // Not a way to smuggle a second operation: a top-level one leaves parameters.operation to the skill's strict schema.
  expect(
    SubmitActionRequestSchema.parse({ ...base, skill_id: 'filesystem', operation: 'read', parameters: { operation: 'delete', path: 'a' } })
      .parameters,
  ).toEqual({
    operation: 'delete',
    path: 'a',
  });
});
