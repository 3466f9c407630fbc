# The PyTorch side of `npm run bench` (engine part): the same measurements as bench/engine.ts, in
# plain PyTorch eager, printed as one JSON object with every timed repeat (after warm-up) and the
# median. Run with Debian's python3-torch (/usr/bin/python3).
import json, sys, time
import torch

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

def op_overhead_us(n=200000, repeats=7):
    a = torch.ones(4)
    b = torch.ones(4)
    for _ in range(n // 10):  # warm-up
        a + b
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            a + b
        out.append((time.perf_counter() - t) / n * 1e6)
    return out

def matmul_gflops(size, device="cpu", dtype=torch.float32, repeats=7):
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    flops = 2 * size ** 3
    reps = max(3, int(2e9 / flops))
    a @ b
    out = []
    for _ in range(repeats):
        if device != "cpu": torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device != "cpu": torch.cuda.synchronize()
        out.append(flops / ((time.perf_counter() - t) / reps) / 1e9)
    return out

if __name__ == "__main__":
    # peer_engine.py [SIZES [DEVICE [DTYPE [THREADS]]]]: on a GPU, only the matmul is measured.
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "256,1024,2048").split(",")]
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    dtype = getattr(torch, sys.argv[3]) if len(sys.argv) > 3 else torch.float32
    if len(sys.argv) > 4:
        torch.set_num_threads(int(sys.argv[4]))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if device == "cpu":
        out["op_overhead_us_runs"] = op_overhead_us()
        out["op_overhead_us"] = median(out["op_overhead_us_runs"])
    runs = {str(s): matmul_gflops(s, device, dtype) for s in sizes}
    out["matmul_gflops_runs"] = runs
    out["matmul_gflops"] = {s: median(r) for s, r in runs.items()}
    print(json.dumps(out))
