// Where the shared fixtures are: ../shared/fixtures beside the project root, or SPPO_HF_FIXTURES.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const hfTiny = process.env.SPPO_HF_FIXTURES ?? join(projectRoot, '..', 'shared', 'fixtures', 'hf-tiny');

/** The model folders of the hf-tiny fixtures (those with a model.safetensors). */
export function fixtureModels(): string[] {
  if (!existsSync(hfTiny)) return [];
  return readdirSync(hfTiny).filter((d) => existsSync(join(hfTiny, d, 'model.safetensors'))).sort();
}
