// How many CPU threads libtorch starts with, chosen as PyTorch chooses them: one per physical core (hyper-threads
// share a core's arithmetic units, so a second thread on one gains nothing for matrix products), counted among the
// CPUs this process may run on, unless OMP_NUM_THREADS says otherwise. Debian's libtorch 1.13 starts with one thread
// where PyTorch 2.x starts with one per core; applied once, when the addon loads (src/torch/native.ts). No imports of
// the addon here: the rule is a pure function of the machine's topology and the environment.
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

/** The CPUs' (package, core) pairs from sysfs, one per logical CPU; null where sysfs does not say. */
function coreIds(): Map<number, string> | null {
  const base = '/sys/devices/system/cpu';
  try {
    const out = new Map<number, string>();
    for (const name of readdirSync(base)) {
      const m = /^cpu(\d+)$/.exec(name);
      if (!m) continue;
      try {
        const t = `${base}/${name}/topology`;
        out.set(Number(m[1]), `${readFileSync(`${t}/physical_package_id`, 'utf8').trim()}:${readFileSync(`${t}/core_id`, 'utf8').trim()}`);
      } catch {
        /* an offline CPU has no topology */
      }
    }
    return out.size > 0 ? out : null;
  } catch {
    return null;
  }
}

/**
 * Physical cores available to this process: the logical CPUs it may run on (its affinity, `os.availableParallelism`)
 * divided by the hardware threads per core. At least 1.
 */
export function physicalCores(): number {
  const logicalAll = os.cpus().length || 1;
  const allowed = os.availableParallelism?.() ?? logicalAll;
  const ids = coreIds();
  const cores = ids ? new Set(ids.values()).size : logicalAll;
  const threadsPerCore = Math.max(1, Math.round((ids?.size ?? logicalAll) / Math.max(1, cores)));
  return Math.max(1, Math.floor(allowed / threadsPerCore));
}

/**
 * The intra-op thread count to start with: OMP_NUM_THREADS when set to a positive number (then OpenMP has already
 * applied it and null is returned: nothing to change), else the physical cores.
 */
export function defaultNumThreads(env: NodeJS.ProcessEnv = process.env): number | null {
  const given = env.OMP_NUM_THREADS?.trim();
  if (given && /^\d+$/.test(given) && Number(given) > 0) return null;
  return physicalCores();
}
