// Where the game tests find the preference-game fixture: ../shared/fixtures/games/games.json relative to
// the project root, or the file named by SPPO_GAMES.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (tests run from dist/test/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GAMES_FILE = process.env.SPPO_GAMES ? resolve(process.env.SPPO_GAMES) : resolve(ROOT, '../shared/fixtures/games/games.json');
export const CLI = resolve(ROOT, 'dist/src/cli/main.js');
