// Preference games: loading and validating a file of tabular preference matrices.
//
// A game is one prompt with n candidate responses and a preference matrix P, where P[i][j] is the
// probability that response i is preferred to response j. A preference matrix has entries in [0, 1] and
// P + P^T = 1 (so the diagonal is 1/2). A file may hold a Nash equilibrium (maximin mixed strategy) per
// game, against which the lab reports the L1 distance.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

export interface Game {
  name: string;
  /** n x n, row-major: P[i * n + j] = Pr(i preferred to j). */
  P: Float64Array;
  n: number;
  /** A given equilibrium (sums to 1), or null when the file gives none. */
  nash: Float64Array | null;
}

/** The file's problem, naming the file, the game and the entry. */
export class GameFileError extends Error {
  override name = 'GameFileError';
}

/** Tolerance on P[i][j] + P[j][i] = 1 and on sum(nash) = 1 (the fixtures round to 1e-12 and 1e-10). */
export const SUM_TOLERANCE = 1e-6;

export function entry(P: Float64Array, n: number, i: number, j: number): number {
  return P[i * n + j]!;
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(12)));
}

/** Validates parsed JSON of the layout { games: [{ name, P, nash? }] } and returns the games. */
export function parseGames(data: unknown, file = 'games.json'): Game[] {
  const fail = (msg: string): never => {
    throw new GameFileError(`${file}: ${msg}`);
  };
  if (typeof data !== 'object' || data === null || !Array.isArray((data as { games?: unknown }).games)) {
    fail('expected an object with a "games" array');
  }
  const raw = (data as { games: unknown[] }).games;
  if (raw.length === 0) fail('"games" is empty');
  const games: Game[] = [];
  const seen = new Set<string>();
  raw.forEach((g, gi) => {
    if (typeof g !== 'object' || g === null) fail(`games[${gi}] is not an object`);
    const obj = g as Record<string, unknown>;
    const name = typeof obj.name === 'string' && obj.name.length > 0 ? obj.name : fail(`games[${gi}] has no "name"`);
    if (seen.has(name)) fail(`game "${name}" appears twice`);
    seen.add(name);
    const where = `game "${name}"`;
    const rows = obj.P;
    if (!Array.isArray(rows) || rows.length === 0) fail(`${where}: "P" must be a non-empty array of rows`);
    const n = (rows as unknown[]).length;
    const P = new Float64Array(n * n);
    (rows as unknown[]).forEach((row, i) => {
      if (!Array.isArray(row)) fail(`${where}: P[${i}] is not an array`);
      if ((row as unknown[]).length !== n) fail(`${where}: P[${i}] has ${(row as unknown[]).length} entries, expected ${n} (P must be square)`);
      (row as unknown[]).forEach((v, j) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${where}: P[${i}][${j}] = ${JSON.stringify(v)} is not a finite number`);
        const x = v as number;
        if (x < 0 || x > 1) fail(`${where}: P[${i}][${j}] = ${fmt(x)} is outside [0, 1]`);
        P[i * n + j] = x;
      });
    });
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const s = P[i * n + j]! + P[j * n + i]!;
        if (Math.abs(s - 1) > SUM_TOLERANCE) {
          fail(i === j ? `${where}: P[${i}][${i}] = ${fmt(P[i * n + i]!)}, expected 0.5 (P + P^T = 1)` : `${where}: P[${i}][${j}] + P[${j}][${i}] = ${fmt(s)}, expected 1`);
        }
      }
    }
    let nash: Float64Array | null = null;
    if (obj.nash !== undefined && obj.nash !== null) {
      const v = obj.nash;
      if (!Array.isArray(v) || v.length !== n) fail(`${where}: "nash" must be an array of ${n} probabilities`);
      nash = new Float64Array(n);
      let sum = 0;
      (v as unknown[]).forEach((x, i) => {
        if (typeof x !== 'number' || !Number.isFinite(x) || x < -SUM_TOLERANCE || x > 1 + SUM_TOLERANCE) fail(`${where}: nash[${i}] = ${JSON.stringify(x)} is not a probability`);
        nash![i] = Math.max(0, x as number);
        sum += x as number;
      });
      if (Math.abs(sum - 1) > SUM_TOLERANCE) fail(`${where}: nash sums to ${fmt(sum)}, expected 1`);
    }
    games.push({ name, P, n, nash });
  });
  return games;
}

/** Reads and validates a games file; errors name the file (its base name), the game and the entry. */
export async function loadGames(path: string): Promise<Game[]> {
  const label = basename(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new GameFileError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new GameFileError(`${label}: not JSON (${(err as Error).message})`);
  }
  return parseGames(data, label);
}

/** Builds a game from nested rows (tests, examples); validates like a file. */
export function makeGame(name: string, rows: number[][], nash?: number[]): Game {
  return parseGames({ games: [{ name, P: rows, nash }] }, '<inline>')[0]!;
}

/** A Bradley-Terry game: P[i][j] = sigmoid(r_i - r_j). */
export function bradleyTerryGame(name: string, rewards: number[]): Game {
  const rows = rewards.map((ri) => rewards.map((rj) => 1 / (1 + Math.exp(-(ri - rj)))));
  return makeGame(name, rows);
}
