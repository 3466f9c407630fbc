// Fixed sizes and seeds of the demo (docs/demo.md explains each choice).

/** Held-out evaluation prompts: drawn first, never seen by SFT, the proxy judge or any SPPO iteration. */
export const HELD_OUT_SEED = 0;
export const HELD_OUT_COUNT = 256;

/**
 * Samples per held-out prompt, at temperature 1, of every checkpoint (the starter's and each iteration's), for the
 * style and correctness figures of `details[]`: the style mix's exploitability is a convex function of the mix, so the
 * sampling noise of one response per prompt (256 in all) inflates it — a policy exactly at the equilibrium measures
 * 0.021 on average and up to 0.077 (docs/demo.md, "The measure") — and 8 per prompt (2,048) cut that noise by about
 * 1/sqrt(8). The win rates stay on the evaluation's one response per prompt (as AlpacaEval's).
 */
export const DEMO_STYLE_SAMPLES = 8;

/** The starter policy: a small Llama over the character-level tokenizer. */
export const STARTER_ARCH = { hidden: 192, layers: 4, heads: 6, intermediate: 512, maxPositions: 128 };
export const STARTER_SFT_EXAMPLES = 48000;
export const STARTER_SFT_SEED = 1;

/** Prompt streams of src/demo/tasks.ts trainingPrompts (kept apart so no two uses share prompts by design). */
export const STREAM_PROXY = 1;
export const STREAM_SPPO = 2;
export const STREAM_VALID = 3;
/** Validation prompts of the hyper-parameter search (their own stream; never the held-out ones). */
export const VALID_COUNT = 256;
