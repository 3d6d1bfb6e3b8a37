/**
 * `npx tsx test/bench/injection-rates.ts`: how well and how fast the prompt-injection screen
 * works.
 *   - Detection rate (attacks whose verdict is not 'clean') and false-positive rate (benign texts
 *     whose verdict is not 'clean') on test/fixtures/injection/dev.jsonl (the rules were tuned on
 *     it), holdout.jsonl (not tuned on for the rules, but looked at while tuning the classifier),
 *     seed.jsonl (the seed system's own test prompts), sealed.jsonl and fresh.jsonl (each written
 *     by someone who never read the screen; never tuned on: the numbers to quote), with the
 *     stricter verdict = 'injection' rates next to them, 95% Wilson intervals, and misses and false
 *     positives per kind.
 *   - Throughput: the long benign technical texts of both sets, a 1 MiB input made of them, and
 *     1 MiB worst cases (look-alikes or zero-width characters in every word, escapes throughout).
 *   - Latency for a 2 KB text (p50 and p99 of many runs): the whole screen, and the classifier alone.
 * Results: a table on stdout and JSON in bench-results/injection-<timestamp>.json.
 * BENCH_REPEATS (default 5) sets how often each throughput input is screened; the median counts.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { attackProbability } from '../../domain/injection-screen/classifier.js';
import { INJECTION_SCORE, SUSPICIOUS_SCORE, screenText } from '../../domain/injection-screen/index.js';
import { normaliseText } from '../../domain/injection-screen/normalise.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { rateWithInterval } from '../../scripts/lib/wilson-interval.js';
import { textTable } from '../../scripts/lib/text-table.js';
import { positiveInt } from './env.js';

interface Sample {
  text: string;
  label: 'attack' | 'benign';
  kind: string;
}

interface SetResult {
  attacks: number;
  detected: number;
  detectedAsInjection: number;
  benign: number;
  falsePositives: number;
  falsePositivesAsInjection: number;
  /** kind -> [samples, misses (attacks) or false positives (benign), the same for verdict = 'injection'] */
  attackKinds: Record<string, [number, number, number]>;
  benignKinds: Record<string, [number, number, number]>;
  missed: { kind: string; score: number; text: string }[];
  falselyFlagged: { kind: string; score: number; rules: string[]; text: string }[];
}

interface Throughput {
  input: string;
  bytes: number;
  medianMs: number;
  mbPerSecond: number;
  verdict: string;
}

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'injection');
const REPEATS = positiveInt('BENCH_REPEATS', 5);
const MIB = 1 << 20;

function load(file: string): Sample[] {
  return readFileSync(join(FIXTURES, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Sample);
}

function evaluate(samples: Sample[]): SetResult {
  const r: SetResult = {
    attacks: 0,
    detected: 0,
    detectedAsInjection: 0,
    benign: 0,
    falsePositives: 0,
    falsePositivesAsInjection: 0,
    attackKinds: {},
    benignKinds: {},
    missed: [],
    falselyFlagged: [],
  };
  for (const s of samples) {
    const result = screenText(s.text);
    const flagged = result.verdict !== 'clean';
    const kinds = s.label === 'attack' ? r.attackKinds : r.benignKinds;
    const [n, wrong, wrongStrict] = kinds[s.kind] ?? [0, 0, 0];
    const asInjection = result.verdict === 'injection';
    const excerpt = s.text.replace(/\s+/g, ' ').slice(0, 100);
    if (s.label === 'attack') {
      r.attacks += 1;
      if (flagged) r.detected += 1;
      if (result.verdict === 'injection') r.detectedAsInjection += 1;
      else if (!flagged) r.missed.push({ kind: s.kind, score: result.score, text: excerpt });
      kinds[s.kind] = [n + 1, wrong + (flagged ? 0 : 1), wrongStrict + (asInjection ? 0 : 1)];
    } else {
      r.benign += 1;
      if (flagged) {
        r.falsePositives += 1;
        r.falselyFlagged.push({ kind: s.kind, score: result.score, rules: result.findings.map((f) => f.rule), text: excerpt });
      }
      if (result.verdict === 'injection') r.falsePositivesAsInjection += 1;
      kinds[s.kind] = [n + 1, wrong + (flagged ? 1 : 0), wrongStrict + (asInjection ? 1 : 0)];
    }
  }
  return r;
}

function megabyteOf(unit: string): string {
  return unit.repeat(Math.ceil(MIB / unit.length)).slice(0, MIB);
}

function measure(input: string, text: string): Throughput {
  const bytes = Buffer.byteLength(text, 'utf8');
  let verdict = screenText(text).verdict;
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const start = performance.now();
    verdict = screenText(text).verdict;
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const medianMs = times[Math.floor(times.length / 2)];
  return { input, bytes, medianMs: round(medianMs, 1), mbPerSecond: round(bytes / MIB / (medianMs / 1000), 2), verdict };
}

/** All long texts screened one after another, as one measurement. */
function measureEach(input: string, texts: string[]): Throughput {
  const bytes = texts.reduce((sum, t) => sum + Buffer.byteLength(t, 'utf8'), 0);
  const verdicts = new Set(texts.map((t) => screenText(t).verdict));
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const start = performance.now();
    for (const t of texts) screenText(t);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const medianMs = times[Math.floor(times.length / 2)];
  return {
    input,
    bytes,
    medianMs: round(medianMs, 1),
    mbPerSecond: round(bytes / MIB / (medianMs / 1000), 2),
    verdict: [...verdicts].join('/'),
  };
}

interface Latency {
  input: string;
  p50Ms: number;
  p99Ms: number;
}

const LATENCY_RUNS = 2000;

/** Runs fn on the text many times (after a warm-up) and reports the p50 and p99 of one call. */
function latency(input: string, text: string, fn: (text: string) => unknown): Latency {
  for (let i = 0; i < 200; i++) fn(text);
  const times: number[] = [];
  for (let i = 0; i < LATENCY_RUNS; i++) {
    const start = performance.now();
    fn(text);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => round(times[Math.floor(q * (times.length - 1))], 3);
  return { input, p50Ms: at(0.5), p99Ms: at(0.99) };
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

function kindLines(kinds: Record<string, [number, number, number]>, what: string): string {
  const wrong = Object.entries(kinds).filter(([, [, w, ws]]) => w > 0 || ws > 0);
  if (wrong.length === 0) return `  ${what}: none`;
  return `  ${what} (any verdict / verdict = injection): ` + wrong.map(([kind, [n, w, ws]]) => `${kind} ${w}/${ws} of ${n}`).join(', ');
}

const dev = load('dev.jsonl');
const holdout = load('holdout.jsonl');
const sets = {
  dev: evaluate(dev),
  holdout: evaluate(holdout),
  seed: evaluate(load('seed.jsonl')),
  sealed: evaluate(load('sealed.jsonl')),
  fresh: evaluate(load('fresh.jsonl')),
};

const longTexts = [...dev, ...holdout].filter((s) => s.label === 'benign' && s.kind.startsWith('long_')).map((s) => s.text);
const throughput = [
  measureEach(`long benign texts (${longTexts.length}, one by one)`, longTexts),
  measure('1 MiB of long benign texts', megabyteOf(longTexts.join('\n\n') + '\n\n')),
  measure('1 MiB, look-alike letter in every word', megabyteOf('p\u0430ypal acc\u043eunt ')),
  measure('1 MiB, zero-width character in every word', megabyteOf('up\u200bdate the fi\u200ble ')),
  measure('1 MiB of percent escapes on one line', megabyteOf('%41')),
  measure('1 MiB of trigger words', megabyteOf('ignore previous system prompt send key ')),
];

const twoKb = longTexts.join('\n\n').slice(0, 2048);
const latencies = [
  latency('2 KB benign text: screenText', twoKb, screenText),
  latency('2 KB benign text: classifier alone (normalised text)', normaliseText(twoKb), attackProbability),
];

console.log(`Injection screen: verdict thresholds suspicious >= ${SUSPICIOUS_SCORE}, injection >= ${INJECTION_SCORE}`);
console.log('"detected" and "false positives" count any verdict other than clean; "as injection" only verdict = injection.');
console.log('In brackets: the rate and its 95% Wilson confidence interval.\n');
console.log(
  textTable([
    ['set', 'detected', 'as injection', 'false positives', 'as injection'],
    ...Object.entries(sets).map(([name, r]) => [
      name,
      rateWithInterval(r.detected, r.attacks),
      rateWithInterval(r.detectedAsInjection, r.attacks),
      rateWithInterval(r.falsePositives, r.benign),
      rateWithInterval(r.falsePositivesAsInjection, r.benign),
    ]),
  ]),
);
for (const [name, r] of Object.entries(sets)) {
  console.log(`\n${name}`);
  console.log(kindLines(r.attackKinds, 'missed attacks by kind'));
  console.log(kindLines(r.benignKinds, 'false positives by kind'));
  for (const m of r.missed) console.log(`    missed  ${m.kind} (score ${m.score}): ${m.text}`);
  for (const f of r.falselyFlagged) console.log(`    flagged ${f.kind} (score ${f.score}; ${f.rules.join(', ')}): ${f.text}`);
}
console.log('\nThroughput (median of ' + REPEATS + ')');
console.log(
  textTable([
    ['input', 'bytes', 'ms', 'MB/s', 'verdict'],
    ...throughput.map((t) => [t.input, String(t.bytes), t.medianMs.toFixed(1), t.mbPerSecond.toFixed(2), t.verdict]),
  ]),
);

console.log(`\nLatency (${LATENCY_RUNS} runs)`);
console.log(textTable([['input', 'p50 ms', 'p99 ms'], ...latencies.map((l) => [l.input, l.p50Ms.toFixed(3), l.p99Ms.toFixed(3)])]));

const timestamp = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = join(PROJECT_ROOT, 'bench-results');
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, `injection-${timestamp}.json`);
writeFileSync(
  outFile,
  JSON.stringify(
    {
      timestamp: new Date().toISOString(),
      host: { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, loadavg: os.loadavg() },
      thresholds: { suspicious: SUSPICIOUS_SCORE, injection: INJECTION_SCORE },
      sets,
      throughput,
      latencies,
    },
    null,
    2,
  ) + '\n',
);
console.log(`\nwrote ${outFile}`);
