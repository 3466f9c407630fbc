// Engine benchmarks: the cost of one tiny op call, and fp32 matmul throughput, for sppo and for
// plain PyTorch eager measured in the same run (bench/peer_engine.py).
import * as torch from '../src/torch/index.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/** Microseconds per `a.add(b)` on 4-element tensors, inside a tidy() scope (the documented loop). */
export function opOverheadUs(n = 200000, repeats = 5): number {
  const a = torch.ones([4]);
  const b = torch.ones([4]);
  const out: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t = now();
    torch.tidy(() => {
      for (let i = 0; i < n; i++) a.add(b).dispose();
    });
    out.push(((now() - t) / n) * 1e6);
  }
  return median(out);
}

export function matmulGflops(size: number, device = 'cpu', dtype: torch.DType = 'float32'): number {
  const g = new torch.Generator(0);
  return torch.tidy(() => {
    const a = torch.randn([size, size], { generator: g }).to(dtype).to(device);
    const b = torch.randn([size, size], { generator: g }).to(dtype).to(device);
    const flops = 2 * size ** 3;
    const reps = Math.max(3, Math.floor(2e9 / flops));
    a.matmul(b).dispose();
    const sync = () => device !== 'cpu' && torch.cuda.synchronize();
    const times: number[] = [];
    for (let r = 0; r < 5; r++) {
      sync();
      const t = now();
      for (let i = 0; i < reps; i++) a.matmul(b).dispose();
      sync();
      times.push((now() - t) / reps);
    }
    return flops / median(times) / 1e9;
  });
}
