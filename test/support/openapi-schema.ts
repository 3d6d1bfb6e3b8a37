/**
 * The JSON Schema subset our OpenAPI document uses, for the fuzz test: a validator for responses
 * (every problem as "where: what") and fast-check arbitraries for valid request values.
 */
import fc from 'fast-check';

export type JsonSchema = { [key: string]: any };
export interface OpenApiDocument {
  paths: Record<string, Record<string, any>>;
  components?: Record<string, Record<string, JsonSchema>>;
}

/** Follows a local $ref (#/components/...) to the schema it names. */
export function deref(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
  if (typeof schema.$ref !== 'string') return schema;
  const target = schema.$ref
    .replace(/^#\//, '')
    .split('/')
    .reduce((node: any, part: string) => node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  if (!target) throw new Error(`unresolvable $ref ${schema.$ref}`);
  return deref(doc, target);
}

const typeOf = (value: unknown) =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;

/** The problems with `value` under `schema`; empty when it validates. */
export function validate(doc: OpenApiDocument, schema: JsonSchema, value: unknown, at = '$'): string[] {
  const s = deref(doc, schema);
  if (s.anyOf || s.oneOf) {
    const options: JsonSchema[] = s.anyOf ?? s.oneOf;
    const ok = options.some((option) => validate(doc, option, value, at).length === 0);
    if (!ok) return [`${at}: matches none of ${options.length} alternatives`];
  }
  for (const part of s.allOf ?? []) {
    const problems = validate(doc, part, value, at);
    if (problems.length) return problems;
  }
  if (s.type !== undefined) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    const actual = typeOf(value);
    const fits = types.includes(actual) || (actual === 'integer' && types.includes('number'));
    if (!fits) return [`${at}: expected ${types.join('|')}, got ${actual}`];
  }
  if (s.enum && !s.enum.some((e: unknown) => e === value)) return [`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`];
  if ('const' in s && s.const !== value) return [`${at}: expected ${JSON.stringify(s.const)}`];
  const problems: string[] = [];
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) problems.push(`${at}: ${value} < minimum ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) problems.push(`${at}: ${value} > maximum ${s.maximum}`);
  }
  if (typeof value === 'string') {
    if (s.minLength !== undefined && value.length < s.minLength) problems.push(`${at}: shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && value.length > s.maxLength) problems.push(`${at}: longer than ${s.maxLength}`);
    if (s.pattern && !new RegExp(s.pattern, 'u').test(value)) problems.push(`${at}: does not match ${s.pattern}`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) problems.push(`${at}: fewer than ${s.minItems} items`);
    if (s.maxItems !== undefined && value.length > s.maxItems) problems.push(`${at}: more than ${s.maxItems} items`);
    if (s.items) value.forEach((item, i) => problems.push(...validate(doc, s.items, item, `${at}[${i}]`)));
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    for (const key of s.required ?? []) if (!(key in object)) problems.push(`${at}: missing ${key}`);
    for (const [key, item] of Object.entries(object)) {
      const property = s.properties?.[key];
      if (property) problems.push(...validate(doc, property, item, `${at}.${key}`));
      else if (s.additionalProperties === false) problems.push(`${at}: unexpected field ${key}`);
      else if (typeof s.additionalProperties === 'object') problems.push(...validate(doc, s.additionalProperties, item, `${at}.${key}`));
    }
  }
  return problems;
}

/** Values valid under `schema`. */
export function arbitraryOf(doc: OpenApiDocument, schema: JsonSchema): fc.Arbitrary<unknown> {
  const s = deref(doc, schema);
  if (s.enum) return fc.constantFrom(...s.enum);
  if ('const' in s) return fc.constant(s.const);
  if (s.anyOf || s.oneOf) return fc.oneof(...(s.anyOf ?? s.oneOf).map((o: JsonSchema) => arbitraryOf(doc, o)));
  const type = Array.isArray(s.type) ? s.type.find((t: string) => t !== 'null') : s.type;
  switch (type) {
    case 'string':
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern));
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 40) });
    case 'integer':
      return fc.integer({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6 });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(arbitraryOf(doc, s.items ?? {}), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 4, 4) });
    case 'object': {
      const properties: Record<string, JsonSchema> = s.properties ?? {};
      if (!Object.keys(properties).length) {
        const values =
          typeof s.additionalProperties === 'object' ? arbitraryOf(doc, s.additionalProperties) : fc.jsonValue({ maxDepth: 2 });
        return fc.dictionary(fc.string({ maxLength: 10 }), values, { maxKeys: 3 });
      }
      const record = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, arbitraryOf(doc, v)]));
      return fc.record(record, { requiredKeys: s.required ?? [] });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}
