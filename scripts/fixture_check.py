"""Compares freshly written fixtures with the committed ones (used by peft-fixtures.py and trl-fixtures.py --check):
every tensor of every .safetensors file within 4 * 2048 * 2^-24 of the committed one, relative to its largest
|value| (the float32 bounds of test/helpers/tolerances.ts: another CPU's kernels sum in other orders), and the
JSON files equal."""
import json
import os

from safetensors.torch import load_file

BOUND = 4 * 2048 * 2 ** -24


def compare(fresh, committed):
    bad = 0
    for dirpath, _, files in os.walk(fresh):
        for f in files:
            a = os.path.join(dirpath, f)
            b = os.path.join(committed, os.path.relpath(a, fresh))
            if not os.path.exists(b):
                print(f"FAIL {b}: not committed")
                bad += 1
            elif f.endswith(".safetensors"):
                ta, tb = load_file(a), load_file(b)
                if set(ta) != set(tb):
                    print(f"FAIL {b}: tensors {sorted(set(ta) ^ set(tb))} differ")
                    bad += 1
                    continue
                for k in ta:
                    x, y = ta[k].double(), tb[k].double()
                    err = float((x - y).abs().max() / y.abs().max().clamp_min(1e-30)) if x.shape == y.shape else float("inf")
                    if not err <= BOUND:
                        print(f"FAIL {b}: {k} differs by {err:.2e} (bound {BOUND:.2e})")
                        bad += 1
            elif f.endswith(".json"):
                ja, jb = json.load(open(a)), json.load(open(b))
                if ja != jb:
                    print(f"FAIL {b}: differs from a fresh run")
                    bad += 1
    print(f"{'ok  ' if not bad else 'FAIL'} {committed}: a fresh run matches the committed fixtures" + (f" ({bad} difference(s))" if bad else ""))
    return bad


def check_and_exit(fresh, committed):
    """`--check`: compares the fixtures just written to `fresh` with `committed`, removes `fresh`, exits 1 on a difference."""
    import shutil
    import sys
    bad = compare(fresh, committed)
    shutil.rmtree(fresh, ignore_errors=True)
    sys.exit(1 if bad else 0)


def check_runs(fresh, committed, path, run_key, float_keys, bound, ok_message):
    """Compares runs of generations (run_key names each run) with the committed ones: the same tokens, and each list
    under float_keys within `bound`; prints one ok line or a FAIL line per difference. Returns the exit status."""
    bad = 0
    for r, c in zip(fresh, committed):
        for i, (g, h) in enumerate(zip(r["generations"], c["generations"])):
            gap = max(abs(x - y) for k in float_keys for x, y in zip(g[k], h[k]))
            if g["tokens"] != h["tokens"] or gap > bound:
                print(f"FAIL {path}: {run_key} {r[run_key]}, prompt {i}: tokens {g['tokens']} vs {h['tokens']}, gap {gap:.2e}")
                bad += 1
    if len(fresh) != len(committed):
        print(f"FAIL {path}: {len(committed)} runs committed, {len(fresh)} now")
        bad += 1
    if not bad:
        print(f"ok {path}: {ok_message}")
    return 1 if bad else 0
