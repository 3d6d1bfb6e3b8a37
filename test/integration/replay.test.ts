/**
 * Replays histories recorded from real runs (test/histories/, written by the integration tests
 * with WARDEN_RECORD_HISTORIES=1) against today's workflow code: a non-deterministic change to
 * a workflow fails here before it can break running agents.
 */
import { readFileSync } from 'node:fs';
import { expect, inject, it } from 'vitest';
import { Worker } from '@temporalio/worker';
import { testDataConverter } from '../support/helpers.js';
import { historyFiles, historyFolder } from '../support/histories.js';

const dir = 'test/histories';
// Every file in the directory, never a hand-kept list: a history added there is replayed.
const files = historyFiles();
const typeOf = (f: string): string =>
  JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')).events[0].workflowExecutionStartedEventAttributes.workflowType.name;

it('replays every history pinned in test/histories/CHECKSUMS', () => {
  const pinned = readFileSync(`${dir}/CHECKSUMS`, 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split(/\s+/)[1]);
  expect([...files].sort()).toEqual(pinned);
});

it('has recorded histories of every workflow type', () => {
  const types = new Set(files.map(typeOf));
  expect([...types].sort()).toEqual([
    'actionWorkflow',
    'agentWorkflow',
    'alertWorkflow',
    'capacityWorkflow',
    'conversationWorkflow',
    'emergencyStopWorkflow',
    'reaperWorkflow',
  ]);
});

it('keeps each history in the folder of its workflow type', () => {
  expect(files.filter((f) => !f.startsWith(`${historyFolder(typeOf(f))}/`))).toEqual([]);
});

it('has histories recorded with encrypted payloads (under the test master key)', () => {
  // proto3 JSON: metadata values are base64; a history recorded without the codec must be re-recorded.
  const encrypted = Buffer.from('binary/encrypted').toString('base64');
  const plaintext = files.filter((f) => {
    const input = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')).events[0].workflowExecutionStartedEventAttributes.input;
    return !input.payloads.every((p: { metadata: { encoding: string } }) => p.metadata.encoding === encrypted);
  });
  expect(plaintext, 'recorded without payload encryption: re-record with WARDEN_RECORD_HISTORIES=1').toEqual([]);
});

it('replays every recorded history without non-determinism', async () => {
  const histories = files.map((f) => ({
    workflowId: f.replace(/\.json$/, ''),
    history: JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as unknown, // the worker parses proto3 JSON itself
  }));
  const failures: string[] = [];
  const replayed: string[] = [];
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: { codePath: inject('workflowBundlePath') }, dataConverter: testDataConverter() },
    histories,
  )) {
    replayed.push(result.workflowId);
    if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
  expect(replayed.sort()).toEqual(files.map((f) => f.replace(/\.json$/, '')).sort());
});
