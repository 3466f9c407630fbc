// `npm run bench`: sppo side by side with plain PyTorch eager, measured in the same run on the same
// machine. Figures are medians; ratios are what to compare (these machines are noisy).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { matmulGflops, opOverheadUs } from './engine.js';

const PYTHON = process.env.SPPO_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

function peer(script: string, args: string[] = []): Record<string, unknown> | null {
  const r = spawnSync(PYTHON, [new URL(script, import.meta.url).pathname.replace('/dist/bench/', '/bench/'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.log(`(PyTorch peer ${script} unavailable: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`);
    console.log(`  install Debian's python3-torch, or set SPPO_BENCH_PYTHON to a python with torch`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const row = (name: string, ours: number, theirs: number | undefined, unit: string, better: 'lower' | 'higher') => {
  const ratio = theirs ? ours / theirs : NaN;
  console.log(`${name.padEnd(34)} ${ours.toFixed(3).padStart(10)} ${(theirs?.toFixed(3) ?? '-').padStart(10)}  ${unit.padEnd(9)} ${Number.isFinite(ratio) ? ratio.toFixed(3) + 'x' : '-'} (${better} is better)`);
};

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const want = (s: string) => only.length === 0 || only.includes(s);
  console.log(`sppo bench: libtorch ${torch.libtorchVersion()}, ${torch.getNumThreads()} threads; peer: ${PYTHON}`);
  if (want('engine')) {
    const sizes = [256, 1024, 2048];
    const p = peer('peer_engine.py', [sizes.join(',')]) as { torch: string; threads: number; op_overhead_us: number; matmul_gflops: Record<string, number> } | null;
    if (p) console.log(`PyTorch ${p.torch}, ${p.threads} threads`);
    console.log(`${'measure'.padEnd(34)} ${'sppo'.padStart(10)} ${'PyTorch'.padStart(10)}  unit      sppo/PyTorch`);
    row('tiny op call (add, 4 elements)', opOverheadUs(), p?.op_overhead_us, 'us', 'lower');
    for (const s of sizes) row(`fp32 matmul ${s}x${s}`, matmulGflops(s), p?.matmul_gflops[String(s)], 'GFLOP/s', 'higher');
  }
  if (want('models')) {
    try {
      const m = await import('./models.js');
      if (typeof (m as { run?: unknown }).run === 'function') await (m as unknown as { run(): Promise<void> }).run();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    }
  }
}

await main();
