/**
 * `npx tsx scripts/train-injection-model.ts [--mistakes]`: trains the prompt-injection screen's
 * classifier on test/fixtures/injection/train.jsonl, dev.jsonl and corpus-written.jsonl (never
 * holdout.jsonl) and writes domain/injection-screen/model-data.ts. It prints the rates of the
 * classifier alone and of the whole screen (rules or classifier), cross-validated per training file
 * and on holdout.jsonl, with 95% Wilson intervals, and the classifier's area under the ROC curve
 * on each with its detection at 2.5% and 5% false positives; --mistakes lists the out-of-fold
 * misses and false positives. It never reads the sealed or fresh sets.
 *
 * Logistic regression with L2, trained by SGD in an order drawn from a fixed seed, so the same
 * data gives the same model. Texts are read in windows as the classifier reads them: every window
 * of a benign text is benign; of a long attack, only the window a first model finds most
 * attack-like is taken as the attack (the rest of the document is often ordinary text). The threshold is chosen on out-of-fold probabilities (5-fold
 * cross-validation on the same data): the lowest one that flags at most MAX_FALSE_POSITIVE_RATE
 * of the benign texts. Weights are quantised to int8 with one scale.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FEATURE_BITS, featureText, forEachDistinctFeature, MIN_FEATURES, windows } from '../domain/injection-screen/classifier.js';
import { screenText, SUSPICIOUS_SCORE } from '../domain/injection-screen/index.js';
import { normaliseText } from '../domain/injection-screen/normalise.js';
import { combine } from '../domain/injection-screen/score.js';
import { PROJECT_ROOT } from './dev-server.js';
import { rateWithInterval } from './lib/wilson-interval.js';
import { textTable } from './lib/text-table.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'injection');
export const TRAINING_FILES = ['train.jsonl', 'dev.jsonl', 'corpus-written.jsonl'];
/** Never trained on: the trainer only reports the screen's rates on it. */
const HOLDOUT_FILE = 'holdout.jsonl';
const MODEL_FILE = join(PROJECT_ROOT, 'domain', 'injection-screen', 'model-data.ts');

const EPOCHS = 30;
const LEARNING_RATE = 0.5;
const L2 = 1e-5;
const FOLDS = 5;
const MAX_FALSE_POSITIVE_RATE = 0.005;
const SEED = 7;

interface Sample {
  text: string;
  label: 'attack' | 'benign';
  kind: string;
  file: string;
}

interface Example {
  buckets: Int32Array;
  values: Float64Array;
  y: number;
}

export interface TrainedModel {
  trainingDataSha256: string;
  bias: number;
  scale: number;
  threshold: number;
  weights: string;
  crossValidation: { detection: number; falsePositiveRate: number };
}

/** sha256 over the training files, in order: the model records it so it cannot drift from the data. */
export function trainingDataSha256(): string {
  const hash = createHash('sha256');
  for (const file of TRAINING_FILES) hash.update(readFileSync(join(FIXTURES, file)));
  return hash.digest('hex');
}

function loadSamples(files: string[]): Sample[] {
  return files.flatMap((file) =>
    readFileSync(join(FIXTURES, file), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => ({ ...(JSON.parse(line) as Omit<Sample, 'file'>), file })),
  );
}

interface Text {
  sample: Sample;
  windows: Example[];
  y: number;
  /** The rules alone (no classifier) make the verdict other than clean. */
  rulesFlag: boolean;
}

function toText(sample: Sample): Text {
  const y = sample.label === 'attack' ? 1 : 0;
  const judged = windows(featureText(normaliseText(sample.text))).flatMap((w) => toExample(w, y) ?? []);
  const ruleFindings = screenText(sample.text).findings.filter((f) => f.category !== 'classifier');
  return { sample, windows: judged, y, rulesFlag: combine(ruleFindings) >= SUSPICIOUS_SCORE };
}

/** As the classifier reads a window: L2-normalised presence; null for a window too short to judge. */
function toExample(text: string, y: number): Example | null {
  const found: number[] = [];
  const n = forEachDistinctFeature(text, (b) => found.push(b));
  if (n < MIN_FEATURES) return null;
  return { buckets: Int32Array.from(found), values: new Float64Array(n).fill(1 / Math.sqrt(n)), y };
}

function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Two passes: the second adds each long attack's most attack-like window under the first model. */
function fitTexts(texts: Text[]): { w: Float64Array; bias: number } {
  const known = texts.flatMap((t) => (t.y === 0 || t.windows.length === 1 ? t.windows : []));
  const first = fit(known);
  const located = texts
    .filter((t) => t.y === 1 && t.windows.length > 1)
    .map((t) => t.windows.reduce((best, w) => (score(w, first.w, first.bias) > score(best, first.w, first.bias) ? w : best)));
  return fit([...known, ...located]);
}

function fit(examples: Example[]): { w: Float64Array; bias: number } {
  const w = new Float64Array(1 << FEATURE_BITS);
  let bias = 0;
  const random = seededRandom(SEED);
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const rate = LEARNING_RATE / (1 + epoch * 0.2);
    for (const ex of shuffled(examples, random)) {
      const g = sigmoid(score(ex, w, bias)) - ex.y;
      for (let k = 0; k < ex.buckets.length; k++) {
        const b = ex.buckets[k];
        w[b] -= rate * (g * ex.values[k] + L2 * w[b]);
      }
      bias -= rate * g;
    }
  }
  return { w, bias };
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

function score(ex: Example, w: Float64Array, bias: number): number {
  let z = bias;
  for (let k = 0; k < ex.buckets.length; k++) z += w[ex.buckets[k]] * ex.values[k];
  return z;
}

interface Judged {
  text: Text;
  p: number;
}

/** The lowest threshold that flags at most the allowed share of benign texts, and the detection at it. */
function chooseThreshold(judged: Judged[]) {
  const benign = judged.filter((r) => r.text.y === 0).map((r) => r.p);
  const attacks = judged.filter((r) => r.text.y === 1).map((r) => r.p);
  benign.sort((a, b) => b - a);
  const allowed = Math.floor(benign.length * MAX_FALSE_POSITIVE_RATE);
  // Just above the (allowed + 1)-th most attack-like benign text, rounded up to 2 decimals.
  const threshold = Math.min(0.99, Math.ceil(((benign[allowed] ?? 0) + 1e-9) * 100) / 100);
  return {
    threshold,
    detection: attacks.filter((p) => p >= threshold).length / attacks.length,
    falsePositiveRate: benign.filter((p) => p >= threshold).length / benign.length,
  };
}

type Model = { w: Float64Array; bias: number };

/** The classifier gives 0 to a text with no window long enough to judge. */
const probability = (t: Text, m: Model) => Math.max(0, ...t.windows.map((w) => sigmoid(score(w, m.w, m.bias))));

/** Out-of-fold probabilities: each text judged by a model trained on the other folds. */
function crossValidate(texts: Text[]): Judged[] {
  const folds = shuffled(
    texts.map((_, i) => i),
    seededRandom(SEED + 1),
  );
  const judged: Judged[] = [];
  for (let f = 0; f < FOLDS; f++) {
    const held = new Set(folds.filter((_, i) => i % FOLDS === f));
    const model = fitTexts(texts.filter((_, i) => !held.has(i)));
    for (const i of held) judged.push({ text: texts[i], p: probability(texts[i], model) });
  }
  return judged;
}

/** Rates of the classifier alone and of the whole screen (rules or classifier) on judged texts. */
function rates(set: string, judged: Judged[], threshold: number): string[] {
  const attacks = judged.filter((j) => j.text.y === 1);
  const benign = judged.filter((j) => j.text.y === 0);
  const byClassifier = (j: Judged) => j.p >= threshold;
  const byScreen = (j: Judged) => j.text.rulesFlag || byClassifier(j);
  return [
    set,
    rateWithInterval(attacks.filter(byClassifier).length, attacks.length),
    rateWithInterval(benign.filter(byClassifier).length, benign.length),
    rateWithInterval(attacks.filter(byScreen).length, attacks.length),
    rateWithInterval(benign.filter(byScreen).length, benign.length),
  ];
}

/** Area under the ROC curve: the chance that a random attack scores above a random benign text (ties count half). */
function areaUnderRoc(judged: Judged[]): number {
  const attacks = judged.filter((j) => j.text.y === 1).map((j) => j.p);
  const benign = judged.filter((j) => j.text.y === 0).map((j) => j.p);
  let wins = 0;
  for (const a of attacks) for (const b of benign) wins += a > b ? 1 : a === b ? 0.5 : 0;
  return wins / (attacks.length * benign.length);
}

/** The classifier's detection at the threshold that flags at most this share of the set's own benign texts. */
function detectionAtFalsePositives(judged: Judged[], share: number): string {
  const attacks = judged.filter((j) => j.text.y === 1);
  const benign = judged.filter((j) => j.text.y === 0).map((j) => j.p);
  benign.sort((a, b) => b - a);
  const above = benign[Math.floor(benign.length * share)] ?? -Infinity;
  return rateWithInterval(attacks.filter((j) => j.p > above).length, attacks.length);
}

/** How well the classifier ranks attacks above benign texts, whatever the threshold. */
function ranking(set: string, judged: Judged[]): string[] {
  return [set, areaUnderRoc(judged).toFixed(3), detectionAtFalsePositives(judged, 0.025), detectionAtFalsePositives(judged, 0.05)];
}

export interface Evaluation {
  /** One row per set: set, classifier detection, classifier false positives, screen detection, screen false positives. */
  rows: string[][];
  /** One row per set: set, the classifier's ROC AUC, its detection at 2.5% and at 5% false positives. */
  ranking: string[][];
  /** Out-of-fold misses and false positives of the whole screen, for reading (never the holdout's). */
  mistakes: string[];
}

export function trainModel(): { model: TrainedModel; evaluation: Evaluation } {
  const texts = loadSamples(TRAINING_FILES).map(toText);
  const outOfFold = crossValidate(texts);
  const chosen = chooseThreshold(outOfFold);

  const { w, bias } = fitTexts(texts);
  const holdout = loadSamples([HOLDOUT_FILE])
    .map(toText)
    .map((text) => ({ text, p: probability(text, { w, bias }) }));
  const t = chosen.threshold;
  const sets: [string, Judged[]][] = [
    ['cross-validated, all training files', outOfFold],
    ...TRAINING_FILES.map((file): [string, Judged[]] => [`cross-validated, ${file}`, outOfFold.filter((j) => j.text.sample.file === file)]),
    [`${HOLDOUT_FILE} (never trained on)`, holdout],
  ];
  const evaluation: Evaluation = {
    rows: [
      ['set', 'classifier detects', 'classifier false positives', 'screen detects', 'screen false positives'],
      ...sets.map(([name, judged]) => rates(name, judged, t)),
    ],
    ranking: [
      ['set', 'classifier ROC AUC', 'detects at 2.5% false positives', 'at 5%'],
      ...sets.map(([name, judged]) => ranking(name, judged)),
    ],
    mistakes: outOfFold
      .filter((j) => (j.text.y === 1) !== (j.text.rulesFlag || j.p >= t))
      .map(
        (j) =>
          `${j.text.y === 1 ? 'missed ' : 'flagged'} ${j.text.sample.file} ${j.text.sample.kind} p=${j.p.toFixed(2)}: ${j.text.sample.text.replace(/\s+/g, ' ').slice(0, 140)}`,
      ),
  };

  const largest = w.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const scale = largest / 127;
  const bytes = Uint8Array.from(w, (x) => Math.round(x / scale) & 0xff);
  const model = {
    trainingDataSha256: trainingDataSha256(),
    bias: round(bias),
    scale: round(scale),
    threshold: t,
    weights: Buffer.from(bytes).toString('base64'),
    crossValidation: { detection: round(chosen.detection), falsePositiveRate: round(chosen.falsePositiveRate) },
  };
  return { model, evaluation };
}

const round = (x: number) => Number(x.toPrecision(8));

export function modelSource(m: TrainedModel): string {
  return `// Generated by scripts/train-injection-model.ts from test/fixtures/injection/${TRAINING_FILES.join(' and ')}; do not edit.
// Cross-validated at the threshold: detection ${m.crossValidation.detection}, false positives ${m.crossValidation.falsePositiveRate}.
export const MODEL = {
  trainingDataSha256: '${m.trainingDataSha256}',
  bias: ${m.bias},
  scale: ${m.scale},
  threshold: ${m.threshold},
  weights:
    '${m.weights}',
};
`;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { model, evaluation } = trainModel();
  writeFileSync(MODEL_FILE, modelSource(model));
  console.log(`wrote ${MODEL_FILE}: threshold ${model.threshold}`);
  console.log('Detected attacks and false positives (verdict not clean); in brackets the rate and its 95% Wilson interval.');
  console.log('The screen counts the rules (as they are now) or the classifier.\n');
  console.log(textTable(evaluation.rows));
  console.log('\nThe classifier alone with its threshold set on each set for at most 2.5% or 5% false positives there.\n');
  console.log(textTable(evaluation.ranking));
  if (process.argv.includes('--mistakes')) console.log('\n' + evaluation.mistakes.join('\n'));
}
