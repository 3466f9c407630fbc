"""Compares the approximate LC of `scripts/alpaca-eval-leaderboard.mjs` (sppo bench alpaca-eval --annotations, no Hub
files) with scikit-learn's LogisticRegressionCV fitted the way AlpacaEval fits "length_controlled_minimal" (features
tanh(std_delta_len) and not_gamed_baseline; see make-lc-sklearn-fixture.py), on the published annotations.

    /work/venvs/sk/bin/python scripts/check-lc-sklearn-annotations.py ALPACA_EVAL_CHECKOUT [REPORTS_DIR]

REPORTS_DIR defaults to /tmp/sppo-alpaca-eval-leaderboard/approximate (one folder per model with report.json).
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

spec = importlib.util.spec_from_file_location("fixture", Path(__file__).with_name("make-lc-sklearn-fixture.py"))
fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture)


def main(repo, reports):
    rows = []
    for d in sorted(Path(reports).iterdir()):
        m = d.name
        df = pd.read_json(Path(repo) / "results" / m / "weighted_alpaca_eval_gpt4_turbo" / "annotations.json")
        if (df["generator_1"] == df["generator_2"]).all():
            continue  # the baseline: 50 by construction, no fit
        delta = df["output_1"].str.len() - df["output_2"].str.len()
        f = np.tanh((delta / delta.std()).to_numpy())
        p = df["preference"].astype(float).replace({0.0: 1.5}).to_numpy() - 1
        keep = ~np.isnan(p)
        X = np.stack([f[keep], np.ones(keep.sum())], axis=1)
        model, C, tight, _ = fixture.fit_cv(X, p[keep], np.ones(keep.sum()))
        test = np.stack([np.zeros(len(df)), np.ones(len(df))], axis=1)
        lc = model.predict_proba(test)[:, 1].mean() * 100
        lc_tight = (1 / (1 + np.exp(-(test @ tight)))).mean() * 100
        ours = json.loads((d / "report.json").read_text())
        rows.append((m, C, ours["lc_C"], lc, lc_tight, ours["length_controlled_winrate"]))
        print(f"{m}: sklearn C {C:.4g} LC {lc:.4f} (tol 1e-12 at that C: {lc_tight:.4f}); sppo C {ours['lc_C']:.4g} LC {ours['length_controlled_winrate']:.4f}")
    same = [r for r in rows if r[1] == r[2]]
    print(f"\n{len(rows)} models; the same C for {len(same)}.")
    print(f"max |LC sppo - LC sklearn (liblinear tol 1e-4)|: {max(abs(r[5] - r[3]) for r in rows):.4f} points; over the same-C models {max(abs(r[5] - r[3]) for r in same):.4f}")
    print(f"max |LC sppo - LC liblinear tol 1e-12 at sklearn's C|, same-C models: {max(abs(r[5] - r[4]) for r in same):.2e}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "/tmp/sppo-alpaca-eval-leaderboard/approximate")
