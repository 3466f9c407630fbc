// scikit-learn's LogisticRegressionCV as AlpacaEval's length_controlled_v1 calls it, on synthetic annotations:
// test/fixtures/lc_sklearn.json, written by scripts/make-lc-sklearn-fixture.py (scikit-learn from the wheelhouse).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SkCase {
  name: string;
  preference: (number | null)[];
  len_reference: number[];
  len_model: number[];
  instruction_difficulty: number[] | null;
  gamed: { index: number[]; preference: number[]; std_delta_len: number[]; instruction_difficulty: number[]; not_gamed_baseline: boolean[] } | null;
  expected: { coef: number[]; coef_tight: number[]; C: number; lc: number; lc_standard_error: number; lc_tight: number; cv_scores: number[][] };
}

export const skFixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/lc_sklearn.json', import.meta.url)), 'utf8')) as { cases: SkCase[] };
