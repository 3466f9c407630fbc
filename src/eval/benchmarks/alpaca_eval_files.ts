// AlpacaEval's annotation preferences and the two files its length_controlled_v1 GLM downloads from the Hugging Face
// data set tatsu-lab/alpaca_eval (df_gamed.csv, instruction_difficulty.csv), read as AlpacaEval reads them.
import type { GamedRow } from '../length_controlled.js';

/**
 * An AlpacaEval preference (annotations.json) as a probability that the model (output_2) is better: values in
 * [1, 2] give value - 1, 0 (AlpacaEval's old encoding of a tie) gives 1/2, null / NaN give NaN (no verdict: left
 * out of the win rate and of the LC fit, kept in the LC average). Anything else is an error naming `where`.
 */
export function alpacaEvalPreference(v: unknown, where = 'preference'): number {
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return NaN;
  if (typeof v !== 'number') throw new RangeError(`${where}: ${JSON.stringify(v)} is not a number`);
  if (v === 0) return 0.5;
  if (v >= 1 && v <= 2) return v - 1;
  throw new RangeError(`${where}: ${v} is not an AlpacaEval preference (1..2, 0 for a tie, null for none)`);
}

/** Splits CSV text into rows of cells (RFC 4180 quotes), skipping empty lines. */
function csvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

function isNaCell(cell: string | undefined): boolean {
  return cell === undefined || cell.trim() === '' || cell.trim().toLowerCase() === 'nan';
}

function csvNumber(cell: string | undefined, file: string, line: number, column: string): number {
  if (isNaCell(cell)) return NaN; // pandas reads an empty cell as NaN
  const v = Number(cell);
  if (Number.isNaN(v)) throw new RangeError(`${file}:${line}: ${column} = ${JSON.stringify(cell)} is not a number`);
  return v;
}

/** df_gamed.csv read: its rows and AlpacaEval's per-row difficulty lookup. */
export interface GamedBaselines {
  rows: GamedRow[];
  /** Row number in the file (0-based) of the first row of each `index` -> its instruction_difficulty. */
  difficultyByRow: Map<number, number>;
}

/**
 * AlpacaEval's df_gamed.csv: the annotations of the two length-gamed baselines (gpt4_1106_preview_verbose and _concise
 * against gpt4_1106_preview), with columns index, preference (in [0, 1]), std_delta_len, instruction_difficulty and
 * not_gamed_baseline (others, such as model, are ignored). The difficulty lookup is the one AlpacaEval makes from it:
 * the rows that first show each `index`, keyed by their row number in the file (pandas' default index), which it
 * then indexes with the row number of each of the model's annotations.
 */
export function parseGamedBaselinesCsv(text: string, file = 'df_gamed.csv'): GamedBaselines {
  const all = csvRows(text);
  if (all.length < 2) throw new RangeError(`${file}: no rows`);
  const header = all[0]!.map((h) => h.trim());
  const col = (name: string): number => {
    const k = header.indexOf(name);
    if (k < 0) throw new RangeError(`${file}:1: no column ${JSON.stringify(name)} (columns: ${header.join(', ')}); expected AlpacaEval's df_gamed.csv`);
    return k;
  };
  const [ci, cp, cs, cd, cn] = [col('index'), col('preference'), col('std_delta_len'), col('instruction_difficulty'), col('not_gamed_baseline')];
  const rows: GamedRow[] = [];
  const difficultyByRow = new Map<number, number>();
  const seen = new Set<number>();
  all.slice(1).forEach((cells, r) => {
    const line = r + 2;
    if (cells.length !== header.length) throw new RangeError(`${file}:${line}: ${cells.length} cells for ${header.length} columns`);
    const nb = cells[cn]!.trim().toLowerCase();
    if (!['true', 'false', '1', '0', '1.0', '0.0'].includes(nb)) throw new RangeError(`${file}:${line}: not_gamed_baseline = ${JSON.stringify(cells[cn])} is not a boolean`);
    const row: GamedRow = {
      index: csvNumber(cells[ci], file, line, 'index'),
      preference: csvNumber(cells[cp], file, line, 'preference'),
      stdDeltaLen: csvNumber(cells[cs], file, line, 'std_delta_len'),
      instructionDifficulty: csvNumber(cells[cd], file, line, 'instruction_difficulty'),
      notGamedBaseline: nb === 'true' || nb === '1' || nb === '1.0',
    };
    if (!Number.isInteger(row.index)) throw new RangeError(`${file}:${line}: index = ${JSON.stringify(cells[ci])} is not an integer`);
    if (!Number.isNaN(row.preference) && !(row.preference >= 0 && row.preference <= 1)) throw new RangeError(`${file}:${line}: preference ${row.preference} is not in [0, 1]`);
    if (!Number.isFinite(row.stdDeltaLen) || !Number.isFinite(row.instructionDifficulty)) throw new RangeError(`${file}:${line}: std_delta_len and instruction_difficulty must be numbers`);
    if (!seen.has(row.index)) {
      seen.add(row.index);
      difficultyByRow.set(r, row.instructionDifficulty);
    }
    rows.push(row);
  });
  return { rows, difficultyByRow };
}

/**
 * AlpacaEval's instruction_difficulty.csv: a first column of instruction indices (the row numbers of the evaluation
 * set) and a column instruction_difficulty; index -> difficulty.
 */
export function parseInstructionDifficultyCsv(text: string, file = 'instruction_difficulty.csv'): Map<number, number> {
  const all = csvRows(text);
  if (all.length < 2) throw new RangeError(`${file}: no rows`);
  const header = all[0]!.map((h) => h.trim());
  const cd = header.indexOf('instruction_difficulty');
  if (cd < 1) throw new RangeError(`${file}:1: expected an index column, then instruction_difficulty (got ${header.join(', ')})`);
  const out = new Map<number, number>();
  all.slice(1).forEach((cells, r) => {
    const line = r + 2;
    const idx = csvNumber(cells[0], file, line, header[0] || 'index');
    const d = csvNumber(cells[cd], file, line, 'instruction_difficulty');
    if (!Number.isInteger(idx)) throw new RangeError(`${file}:${line}: index ${JSON.stringify(cells[0])} is not an integer`);
    if (!Number.isFinite(d)) throw new RangeError(`${file}:${line}: instruction_difficulty ${JSON.stringify(cells[cd])} is not a number`);
    if (out.has(idx)) throw new RangeError(`${file}:${line}: index ${idx} repeated`);
    out.set(idx, d);
  });
  return out;
}
