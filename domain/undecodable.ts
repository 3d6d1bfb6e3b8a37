/**
 * What a payload the worker's codec refused becomes (domain/data-converter.ts): an object holding
 * only the codec's reason. Workflow-safe: the workflows check their input with it.
 */
export const UNDECODABLE_KEY = 'warden_undecodable';

/**
 * A workflow's input that did not decode is not run on: the workflow task fails (and is retried,
 * visible in the Web UI) with the codec's reason, as it would have before the worker decoded
 * tolerantly. Signals and updates are refused and audited by their handlers instead.
 */
export function refuseUndecodableInput(...args: unknown[]): void {
  for (const arg of args) {
    if (arg !== null && typeof arg === 'object' && UNDECODABLE_KEY in arg) {
      throw new Error(String((arg as Record<string, unknown>)[UNDECODABLE_KEY]));
    }
  }
}
