/**
 * How an action is decided, in one place: its parameters are validated by the skill (which builds
 * the command), its free text is screened for prompt injection, and the policy judges the result.
 * The API decides at submission; the control worker decides again from the parameters before the
 * action may wait for approval or run, so a workflow input that claims another decision changes
 * nothing. Pure: no I/O.
 */
import { screenText, type ScreenResult } from './injection-screen/index.js';
import { judge, type Policy, type PolicyDecision } from './policy.js';
import type { ActionType } from './action.js';
import type { SkillCommand, SkillRegistry } from './skill.js';

export interface ActionRequestFields {
  action_type: ActionType;
  skill_id: string;
  operation: string;
  parameters: Record<string, unknown>;
}

export interface ActionDecision {
  command: SkillCommand;
  screen: ScreenResult;
  decision: PolicyDecision;
  /** The decision's reasons and, when the screen flagged something, what it found. */
  reasons: string[];
}

/** Every string inside the parameters, joined: what the injection screen reads. */
function freeText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(freeText).join('\n');
  if (value && typeof value === 'object') return Object.values(value).map(freeText).join('\n');
  return '';
}

/**
 * Validates, screens and judges an action; invalid parameters throw a SkillError naming each
 * problem. An action whose type does not fit its skill (a chat naming shell.exec) is denied by
 * judge's implicit rule skill-fit: it is recorded as rejected, at both doors, and never runs.
 */
export function assessAction(policy: Policy, request: ActionRequestFields, skills: SkillRegistry): ActionDecision {
  const command = skills.prepareCommand(request.skill_id, request.operation, request.parameters);
  const screen = screenText(freeText(request.parameters));
  const decision = judge(
    policy,
    {
      action_type: request.action_type,
      skill_id: request.skill_id,
      operation: request.operation,
      parameters: request.parameters,
      injection: screen.verdict,
      uses_secrets: (command.secrets?.length ?? 0) > 0,
    },
    skills.manifests,
  );
  const reasons = [
    ...decision.reasons,
    ...(screen.verdict === 'clean' ? [] : [`injection screen: ${screen.verdict} (${screen.categories.join(', ')})`]),
  ];
  return { command, screen, decision, reasons };
}
