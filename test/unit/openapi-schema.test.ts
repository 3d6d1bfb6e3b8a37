/**
 * The fuzz test's JSON Schema tools: the validator finds each kind of problem, and every value the
 * generator makes for any schema in Warden's OpenAPI document passes the validator.
 */
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { createApp } from '../../api/app.js';
import { KeyStore } from '../../stores/key-store.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { ConfigSchema } from '../../domain/config.js';
import { loadPolicy } from '../../domain/policy.js';
import { SKILLS } from '../../skills/index.js';
import type { PayloadEncryptionCodec } from '../../domain/payload-codec.js';
import { arbitraryOf, validate, type JsonSchema, type OpenApiDocument } from '../support/openapi-schema.js';

// The document needs no Temporal, Docker or audit store: nothing is called.
const app = createApp({
  client: {} as Client,
  docker: {} as Docker,
  config: ConfigSchema.parse({}),
  logger: pino({ level: 'silent' }),
  keys: KeyStore.open(':memory:'),
  audit: {} as AuditStore,
  policy: loadPolicy(SKILLS),
  payloadCodec: {} as PayloadEncryptionCodec,
});
const doc = (await (await app.request('/openapi.json')).json()) as OpenApiDocument;

describe('validate', () => {
  const schema: JsonSchema = {
    type: 'object',
    properties: {
      id: { type: 'string', pattern: '^a-[0-9]+$' },
      n: { type: 'integer', minimum: 1, maximum: 5 },
      status: { type: ['string', 'null'], enum: ['on', 'off', null] },
      tags: { type: 'array', items: { $ref: '#/components/schemas/Tag' }, maxItems: 2 },
    },
    required: ['id'],
    additionalProperties: false,
  };
  const withTag = { ...doc, components: { schemas: { Tag: { type: 'string', minLength: 2 } } } } as OpenApiDocument;

  it('accepts a value that fits', () => {
    expect(validate(withTag, schema, { id: 'a-1', n: 3, status: null, tags: ['ab'] })).toEqual([]);
  });

  it.each([
    [{ n: 1 }, '$: missing id'],
    [{ id: 'b-1' }, '$.id: does not match ^a-[0-9]+$'],
    [{ id: 'a-1', n: 1.5 }, '$.n: expected integer, got number'],
    [{ id: 'a-1', n: 9 }, '$.n: 9 > maximum 5'],
    [{ id: 'a-1', status: 'maybe' }, '$.status: "maybe" not in ["on","off",null]'],
    [{ id: 'a-1', tags: ['x'] }, '$.tags[0]: shorter than 2'],
    [{ id: 'a-1', tags: ['ab', 'cd', 'ef'] }, '$.tags: more than 2 items'],
    [{ id: 'a-1', extra: true }, '$: unexpected field extra'],
    [['a-1'], '$: expected object, got array'],
  ])('finds the problem in %j', (value, problem) => {
    expect(validate(withTag, schema, value)).toEqual([problem]);
  });
});

describe('arbitraryOf', () => {
  const schemas: Array<[string, JsonSchema]> = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const body = op.requestBody?.content?.['application/json']?.schema;
      if (body) schemas.push([`${method} ${path} request`, body]);
      for (const [status, response] of Object.entries<any>(op.responses)) {
        const s = response.content?.['application/json']?.schema;
        if (s) schemas.push([`${method} ${path} ${status}`, s]);
      }
    }
  }

  it('covers the request and response schemas of the document', () => {
    expect(schemas.length).toBeGreaterThan(100);
  });

  it('makes only values that the validator accepts, for every schema in the document', () => {
    for (const [name, schema] of schemas) {
      fc.assert(
        fc.property(arbitraryOf(doc, schema), (value) => {
          expect(validate(doc, schema, value), name).toEqual([]);
        }),
        { numRuns: 20 },
      );
    }
  });
});
