/** The recorded workflow histories: test/histories/<workflow type>/<name>.json, pinned in CHECKSUMS. */
import { readdirSync } from 'node:fs';

export const HISTORIES_DIR = 'test/histories';

/** The folder of a workflow type's histories: agentWorkflow -> agent, emergencyStopWorkflow -> emergency-stop. */
export const historyFolder = (workflowType: string): string =>
  workflowType.replace(/Workflow$/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Every recorded history, as <folder>/<name>.json, sorted. */
export function historyFiles(): string[] {
  return readdirSync(HISTORIES_DIR, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .sort();
}
