/** fitResult: an exec's result always fits through Temporal, cut with a marker when it must be. */
import { describe, expect, it } from 'vitest';
import type { ExecResult } from '../../domain/agent.js';
import { fitResult, MAX_RESULT_JSON_BYTES, RESULT_CUT_MARKER } from '../../activities/sandbox.js';

const result = (stdout: string, stderr = ''): ExecResult => ({
  exit_code: 0,
  stdout,
  stderr,
  stdout_truncated_bytes: 0,
  stderr_truncated_bytes: 0,
  timed_out: false,
  oom_killed: false,
  duration_ms: 1,
});
const jsonBytes = (r: ExecResult) => Buffer.byteLength(JSON.stringify(r));

describe('fitResult', () => {
  it('leaves a result that fits as it is', () => {
    const small = result('x'.repeat(512 * 1024), 'y'.repeat(512 * 1024));
    expect(fitResult(small)).toBe(small);
  });

  it('cuts output that JSON escaping inflates past the limit, marking and counting each cut', () => {
    // Control characters take 6 bytes each as JSON: 512 KiB per stream becomes 6 MiB.
    const raw = '\u0001'.repeat(512 * 1024);
    const fitted = fitResult(result(raw, raw));
    expect(jsonBytes(fitted)).toBeLessThanOrEqual(MAX_RESULT_JSON_BYTES);
    expect(jsonBytes(fitted)).toBeGreaterThan(MAX_RESULT_JSON_BYTES / 2);
    for (const key of ['stdout', 'stderr'] as const) {
      expect(fitted[key].endsWith(RESULT_CUT_MARKER)).toBe(true);
      expect(fitted[key].split(RESULT_CUT_MARKER)).toHaveLength(2);
      const kept = fitted[key].length - RESULT_CUT_MARKER.length;
      expect(fitted[`${key}_truncated_bytes`]).toBe(512 * 1024 - kept);
    }
  });

  it('cuts the longer stream first and keeps a short one whole', () => {
    const fitted = fitResult(result('\u0002'.repeat(1024 * 1024), 'an error\n'), 64 * 1024);
    expect(fitted.stderr).toBe('an error\n');
    expect(fitted.stdout.endsWith(RESULT_CUT_MARKER)).toBe(true);
    expect(jsonBytes(fitted)).toBeLessThanOrEqual(64 * 1024);
  });
});
