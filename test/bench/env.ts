/** A benchmark size from the environment: a positive integer, or the fallback when unset. */
export function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

/** A benchmark choice from the environment: one of `choices`, the first when unset. */
export function oneOf<T extends string>(name: string, choices: readonly [T, ...T[]]): T {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return choices[0];
  if (!(choices as readonly string[]).includes(raw)) throw new Error(`${name} must be one of ${choices.join(', ')}, got ${raw}`);
  return raw as T;
}
