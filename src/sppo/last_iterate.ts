// What the last-iterate losses (losses.ts: mpo, nash-md, omwu, extragradient) need from the loop, per iteration.
//
//   mpo            the magnet mu: pi_0, then pi_s for the last s <= t - 1 that is a multiple of
//                  training.magnetEvery (MPO's periodically updated magnet); its log-probs are scored by the
//                  trainer as the reference's are (one more forward pass over the pairs; none when mu = pi_{t-1}).
//   nash-md        the magnet is pi_0 for every iteration (Nash-MD's fixed reference mu).
//   extragradient  the magnet is pi_0 (EGPO's reference); with tau = 0 none.
//   omwu           no magnet; win rates against the previous policy's samples (loop.ts, the prev stages).
import type { SppoConfig } from './config.js';

/** The magnet's folder for iteration t (which trains pi_t from pi_{t-1}), or undefined when the loss has none. */
export function magnetDir(cfg: Pick<SppoConfig, 'model' | 'training'>, t: number, checkpointOf: (s: number) => string): string | undefined {
  const { loss, magnetEvery, tau } = cfg.training;
  if (loss === 'nash-md' || (loss === 'extragradient' && (tau ?? 0) > 0)) return cfg.model;
  if (loss !== 'mpo') return undefined;
  const s = magnetEvery * Math.floor((t - 1) / magnetEvery);
  return s === 0 ? cfg.model : checkpointOf(s);
}
