// Engine benchmarks: the cost of one tiny op call, and fp32 matmul throughput, for sppo and for
// plain PyTorch eager measured in the same run (bench/peer_engine.py). Each returns every timed
// repeat after a warm-up; bench/stats.ts takes the median and the spread.
import * as torch from '../src/torch/index.js';
import { median } from './stats.js';

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/** Microseconds per `a.add(b)` on 4-element tensors, inside a tidy() scope (the documented loop), per repeat. */
export function opOverheadUsRuns(n = 200000, repeats = 7): number[] {
  const a = torch.ones([4]);
  const b = torch.ones([4]);
  torch.tidy(() => {
    for (let i = 0; i < n / 10; i++) a.add(b).dispose(); // warm-up
  });
  const out: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t = now();
    torch.tidy(() => {
      for (let i = 0; i < n; i++) a.add(b).dispose();
    });
    out.push(((now() - t) / n) * 1e6);
  }
  a.dispose();
  b.dispose();
  return out;
}

/** GFLOP/s of a size x size matmul, per repeat (after one untimed product). */
export function matmulGflopsRuns(size: number, device = 'cpu', dtype: torch.DType = 'float32', repeats = 7): number[] {
  const g = new torch.Generator(0);
  return torch.tidy(() => {
    const a = torch.randn([size, size], { generator: g }).to(dtype).to(device);
    const b = torch.randn([size, size], { generator: g }).to(dtype).to(device);
    const flops = 2 * size ** 3;
    const reps = Math.max(3, Math.floor(2e9 / flops));
    a.matmul(b).dispose();
    const sync = () => device !== 'cpu' && torch.cuda.synchronize();
    const out: number[] = [];
    for (let r = 0; r < repeats; r++) {
      sync();
      const t = now();
      for (let i = 0; i < reps; i++) a.matmul(b).dispose();
      sync();
      out.push(flops / ((now() - t) / reps) / 1e9);
    }
    return out;
  });
}

export function matmulGflops(size: number, device = 'cpu', dtype: torch.DType = 'float32'): number {
  return median(matmulGflopsRuns(size, device, dtype));
}
