// The generation stage of `sppo run` over OpenAI-compatible servers (`generation.backend`): the same
// Generation records as the in-process generate(), through generateRemote (src/generate/remote.ts).
// With `serverCommand`, the servers are started on the stage's checkpoint when the first chunk needs them
// and stopped by stop() (the loop calls it in a finally, so also when generation fails); with `urls`, the
// servers are already running (and must serve the policy being generated from).
//
// Token ids and per-token log-probs come from the responses (sppo serve, vLLM and SGLang with
// return_token_ids return both). A server that returns text only (SGLang before return_token_ids: its
// logprobs.tokens are text): the text is re-tokenised here, an EOS appended where the sample ended on one
// (SGLang's matched_stop names its id; a matched stop string appends nothing), and the per-token log-probs
// recomputed in process with the stage's model (a forward pass; loadModel is called only then).
import type { SamplingConfig } from './stages/context.js';
import type { Generation } from '../generate/generate.js';
import { generateRemote } from '../generate/remote.js';
import { startServers, type RunningServers } from '../generate/server_process.js';
import type { PenaltyOptions } from '../generate/sampling.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { folderResponseEndId, responseIdsAfterIds } from '../text/chat_template.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { noGrad } from '../torch/index.js';
import { packSequences } from './logprobs.js';
import type { z } from 'zod';
import type { backendSchema } from './config.js';

export type BackendConfig = z.output<typeof backendSchema>;

/** The loop's sampling settings (less its batch size) and the chunk's seed. */
export type RemoteSampling = Omit<SamplingConfig, 'batchSize'> & { seed: number } & Omit<PenaltyOptions, 'logitBias'>;

export interface RemoteGenerator {
  /** n generations per prompt, flat (prompt-major), as generate() returns them. */
  generate(prompts: number[][], s: RemoteSampling, onProgress?: (done: number, total: number) => void): Promise<Generation[]>;
  /** Stops the servers this started (a no-op otherwise). */
  stop(): Promise<void>;
}

export interface RemoteGeneratorOptions {
  /** The checkpoint generated from: {checkpoint} of serverCommand. */
  checkpoint: string;
  tokenizer: Tokenizer;
  /** Loads the checkpoint in process (for servers that return text only). */
  loadModel: () => CausalLMBase;
  log?: (line: string) => void;
  /** Prefix of the log lines (default 'sppo run'). */
  label?: string;
  /** Working folder of serverCommand (default: the current one). */
  cwd?: string;
  /** How the prompts were rendered (the run's raw and chatTemplateKwargs): picks the end-of-turn token a text-only response ends with. */
  prompts?: { raw?: boolean; chatTemplateKwargs?: Record<string, unknown> };
}

async function firstModel(url: string, apiKey: string | undefined): Promise<string> {
  const res = await fetch(`${url.replace(/\/+$/, '')}/models`, { headers: apiKey ? { Authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) throw new Error(`GET ${url}/models: HTTP ${res.status} (set generation.backend.model)`);
  const json = (await res.json()) as { data?: { id?: string }[] };
  const id = json.data?.[0]?.id;
  if (!id) throw new Error(`GET ${url}/models lists no model (set generation.backend.model)`);
  return id;
}

/** The remote generator of one stage (servers, if started, live until stop()). */
export function remoteGenerator(backend: BackendConfig, opts: RemoteGeneratorOptions): RemoteGenerator {
  let apiKey: string | undefined;
  if (backend.apiKeyEnv) {
    apiKey = process.env[backend.apiKeyEnv];
    if (!apiKey) throw new Error(`generation.backend.apiKeyEnv: the environment variable ${backend.apiKeyEnv} is not set`);
  }
  let servers: RunningServers | undefined;
  let target: { urls: string[]; model: string } | undefined;
  let model: CausalLMBase | undefined;
  const log = opts.log ?? (() => {});
  const label = opts.label ?? 'sppo run';

  const connect = async (): Promise<{ urls: string[]; model: string }> => {
    if (target) return target;
    if (backend.serverCommand) {
      servers = await startServers(backend.serverCommand, opts.checkpoint, { count: backend.servers, startTimeoutS: backend.startTimeoutS, apiKey, cwd: opts.cwd });
      log(`${label}: started ${servers.urls.length} inference server(s) on ${opts.checkpoint}: ${servers.urls.join(', ')}`);
      target = { urls: servers.urls, model: backend.model ?? opts.checkpoint };
    } else {
      let model = backend.model;
      // The first server that answers names the model.
      for (let i = 0; model === undefined; i++) {
        try {
          model = await firstModel(backend.urls[i]!, apiKey);
        } catch (e) {
          if (i === backend.urls.length - 1) throw e;
        }
      }
      target = { urls: [...backend.urls], model };
    }
    return target;
  };

  /** Text-only responses: re-tokenised, their log-probs recomputed with the checkpoint. */
  let responseEnd: { id: number | undefined } | undefined;
  const fill = (prompts: number[][], gens: Generation[]): void => {
    const missing = gens.filter((g) => g.tokens.length === 0);
    if (missing.length === 0) return;
    for (const g of missing) {
      // As the text follows its prompt (no word boundary a tokenizer would put at a text's start).
      g.tokens = responseIdsAfterIds(opts.tokenizer, prompts[g.prompt]!, g.text);
      // The EOS id the server matched (SGLang's matched_stop), where it said which.
      const matched = (g as { stopToken?: number }).stopToken;
      delete (g as { stopToken?: number }).stopToken;
      if (g.finishReason === 'eos' && matched !== undefined) {
        g.tokens.push(matched);
        continue;
      }
      // Else the end of the turn the server stopped at: the chat template's terminator (e.g. <end_of_turn>), else EOS.
      responseEnd ??= { id: folderResponseEndId(opts.tokenizer, opts.prompts) };
      if (g.finishReason === 'eos' && responseEnd.id !== undefined) g.tokens.push(responseEnd.id);
    }
    model ??= opts.loadModel();
    const m = model;
    const pad = opts.tokenizer.padTokenId ?? 0;
    for (const g of missing) {
      const batch = packSequences([{ promptIds: prompts[g.prompt]!, responseIds: g.tokens }], pad, m.device);
      try {
        const t = noGrad(() => m.tokenLogprobs({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }));
        let lp: ArrayLike<number>;
        try {
          lp = t.toTypedArray() as Float32Array;
        } finally {
          t.dispose();
        }
        const p = prompts[g.prompt]!.length;
        g.logprobs = g.tokens.map((_, j) => lp[p - 1 + j]!);
      } finally {
        batch.inputIds.dispose();
        batch.attentionMask.dispose();
        batch.responseMask.dispose();
      }
    }
  };

  return {
    async generate(prompts, s, onProgress) {
      const { urls, model: name } = await connect();
      const out = await generateRemote(prompts, {
        urls, model: name, apiKey, n: s.n, temperature: s.temperature, topP: s.topP, topK: s.topK, maxNewTokens: s.maxNewTokens, minNewTokens: s.minNewTokens,
        repetitionPenalty: s.repetitionPenalty, presencePenalty: s.presencePenalty, frequencyPenalty: s.frequencyPenalty,
        stopStrings: s.stop.length ? s.stop : undefined, seed: s.seed, concurrency: backend.concurrency, timeoutMs: backend.timeoutS * 1000, allowTextOnly: true,
        ...(onProgress ? { onProgress } : {}),
        onServerDown: (url, err) => {
          log(`${label}: inference server ${url} dropped (${err.message}); its prompts go to the others`);
          // The next chunks do without it.
          if (target && target.urls.length > 1) target.urls = target.urls.filter((u) => u !== url);
        },
      });
      const flat = out.flat();
      fill(prompts, flat);
      return flat;
    },
    async stop() {
      model?.dispose();
      model = undefined;
      const s = servers;
      servers = undefined;
      target = undefined;
      await s?.stop();
    },
  };
}
