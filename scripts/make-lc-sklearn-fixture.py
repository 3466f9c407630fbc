"""Writes test/fixtures/lc_sklearn.json: synthetic AlpacaEval annotations and gamed-baseline rows, and the
length-controlled win rate that scikit-learn's LogisticRegressionCV gives for them when fitted the way AlpacaEval 2.0's
length_controlled_v1 fits (src/alpaca_eval/metrics/glm_winrate.py in tatsu-lab/alpaca_eval): features
tanh(std_delta_len), instruction_difficulty, not_gamed_baseline (no intercept); rows duplicated as label 1 with weight
p * w and label 0 with weight (1 - p) * w; L1, liblinear, Cs=10, GroupKFold(5) with one group per row, scored by the
weighted soft-label log loss; gamed rows weigh 0.2 / 2. test/eval_length_controlled.test.ts compares the project's
fit with these values (no Python at test time).

Run: python3 -m venv /work/venvs/sk && PIP_RETRIES=0 /work/venvs/sk/bin/pip install scikit-learn pandas
     /work/venvs/sk/bin/python scripts/make-lc-sklearn-fixture.py
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import make_scorer
from sklearn.model_selection import GroupKFold

warnings.filterwarnings("ignore", category=FutureWarning)
sklearn.set_config(enable_metadata_routing=True)
OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "lc_sklearn.json"


def soft_logloss(y_true, y_pred, true_prob, true_sample_weight=None):
    # y_true is the duplicated 0/1 label; the soft label of both copies is p.
    p = np.where(y_true == 1, true_prob, 1 - true_prob)
    q = np.clip(y_pred, 1e-15, 1 - 1e-15)
    ll = p * np.log(q) + (1 - p) * np.log(1 - q)
    if true_sample_weight is not None:
        ll = ll * true_sample_weight
    return -np.mean(ll)


def fit_cv(X, p, w, tol=1e-4):
    m = len(p)
    X2 = np.concatenate([X, X])
    y2 = np.concatenate([np.ones(m), np.zeros(m)])
    prob = np.concatenate([p, 1 - p])
    tw = np.concatenate([w, w])
    groups = np.concatenate([np.arange(m), np.arange(m)])
    folds = list(GroupKFold(n_splits=5).split(X2, y2, groups))
    # The fold of row r is (m - 1 - r) mod 5 (what the project assumes): checked here.
    for f, (_, test) in enumerate(folds):
        rows = sorted(set(int(i % m) for i in test))
        assert rows == [r for r in range(m) if (m - 1 - r) % 5 == f], "GroupKFold folds differ from (m-1-r) mod 5"
    scorer = make_scorer(soft_logloss, response_method="predict_proba", greater_is_better=False).set_score_request(
        true_sample_weight=True, true_prob=True
    )
    model = LogisticRegressionCV(
        cv=GroupKFold(n_splits=5), scoring=scorer, random_state=123, dual=False, penalty="l1", solver="liblinear",
        fit_intercept=False, tol=tol, use_legacy_attributes=True,
    )
    model.set_fit_request(sample_weight=True)
    model.fit(X2, y2, sample_weight=prob * tw, groups=groups, true_sample_weight=tw, true_prob=prob)
    C = float(model.C_[0])
    # The same C refitted to liblinear's tighter tolerance: how far the default tolerance stops from the minimiser.
    tight = LogisticRegression(C=C, penalty="l1", l1_ratio=1, solver="liblinear", fit_intercept=False, tol=1e-12, max_iter=100000, random_state=123)
    tight.fit(X2, y2, sample_weight=prob * tw)
    scores = model.scores_[1]  # (folds, Cs)
    return model, C, tight.coef_[0], scores


def make_case(rng, name, n, gamed, difficulty, theta, psi_len, gamma, longer, n_nan=0, n_tie0=0):
    d_all = np.round(rng.normal(0, 1, n), 4)  # instruction difficulty per instruction index (rounded: a shorter file)
    len_ref = rng.integers(300, 3000, n)
    len_model = np.maximum(1, (len_ref * longer * np.exp(rng.normal(0, 0.5, n))).astype(int))
    delta = len_ref - len_model
    std = delta.std(ddof=1)
    z = psi_len * np.tanh(delta / std) + gamma * d_all * (1 if difficulty else 0) + theta
    p_true = 1 / (1 + np.exp(-z))
    # AlpacaEval-like preferences: mostly near 1 or 2, some soft.
    u = rng.random(n)
    pref = np.where(u < p_true, 2.0, 1.0) + np.where(rng.random(n) < 0.3, (rng.random(n) - 0.5) * 0.6, 0.0)
    pref = np.clip(pref, 1.0, 2.0)
    pref = np.round(pref, 4)
    idx = rng.permutation(n)
    pref_json = [float(x) for x in pref]
    for i in idx[:n_nan]:
        pref_json[i] = None
    for i in idx[n_nan : n_nan + n_tie0]:
        pref_json[i] = 0.0  # AlpacaEval's old encoding of a tie
    p = np.array([np.nan if x is None else (0.5 if x == 0 else x - 1) for x in pref_json])
    rows = []
    if gamed:
        for scale in (1.8, 0.45):  # a verbose and a concise baseline
            lg = np.maximum(1, (len_ref * scale * np.exp(rng.normal(0, 0.3, n))).astype(int))
            dg = len_ref - lg
            sdl = np.round(dg / dg.std(ddof=1), 4)
            pg = 1 / (1 + np.exp(-(psi_len * np.tanh(sdl) + gamma * d_all)))
            pgs = np.round(np.clip(pg + (rng.random(n) - 0.5) * 0.4, 0, 1), 4)
            for i in range(n):
                rows.append(dict(index=i, preference=float(pgs[i]), std_delta_len=float(sdl[i]), instruction_difficulty=float(d_all[i]), not_gamed_baseline=False))
    # The design, AlpacaEval's order: gamed rows, then the model's rows with a preference.
    keep = ~np.isnan(p)
    f_len = np.tanh(delta / std)
    Xm = [f_len[keep]] + ([d_all[keep]] if difficulty else []) + [np.ones(keep.sum())]
    Xm = np.stack(Xm, axis=1)
    pm = p[keep]
    wm = np.ones(keep.sum())
    if gamed:
        Xg = np.stack([np.tanh([r["std_delta_len"] for r in rows]), [r["instruction_difficulty"] for r in rows], np.zeros(len(rows))], axis=1)
        pg = np.array([r["preference"] for r in rows])
        X = np.concatenate([Xg, Xm])
        pp = np.concatenate([pg, pm])
        w = np.concatenate([np.full(len(rows), 0.1), wm])
    else:
        X, pp, w = Xm, pm, wm
    model, C, tight_coef, scores = fit_cv(X, pp, w)
    Xtest = [np.zeros(n)] + ([d_all] if difficulty else []) + [np.ones(n)]
    q = model.predict_proba(np.stack(Xtest, axis=1))[:, 1]
    lc = q.mean() * 100
    lc_se = q.std(ddof=1) / np.sqrt(n) * 100
    coef = [float(c) for c in model.coef_[0]]
    return dict(
        name=name,
        preference=pref_json,
        len_reference=[int(x) for x in len_ref],
        len_model=[int(x) for x in len_model],
        instruction_difficulty=[float(x) for x in d_all] if difficulty else None,
        gamed={k: [r[k] for r in rows] for k in rows[0]} if gamed else None,  # columns of df_gamed.csv
        expected=dict(
            coef=coef,
            coef_tight=[float(c) for c in tight_coef],
            C=C,
            lc=float(lc),
            lc_standard_error=float(lc_se),
            lc_tight=float(np.mean(1 / (1 + np.exp(-(np.stack(Xtest, axis=1) @ tight_coef)))) * 100),
            cv_scores=[[float(s) for s in row] for row in scores],
        ),
    )


def main():
    rng = np.random.default_rng(20240621)
    cases = [
        # A model longer than the baseline with a judge that likes length (gpt-3.5-like, hard instructions).
        make_case(rng, "v1_longer", 400, gamed=True, difficulty=True, theta=-0.9, psi_len=-1.4, gamma=0.8, longer=1.6, n_nan=7, n_tie0=3),
        # A concise model.
        make_case(rng, "v1_concise", 300, gamed=True, difficulty=True, theta=0.3, psi_len=-0.7, gamma=0.5, longer=0.5, n_nan=2, n_tie0=0),
        # Without the Hub files: tanh + intercept only ("length_controlled_minimal"; this project's approximate form).
        make_case(rng, "minimal", 250, gamed=False, difficulty=False, theta=-0.4, psi_len=-1.0, gamma=0.0, longer=1.3, n_nan=3, n_tie0=2),
        # Difficulty without the gamed rows.
        make_case(rng, "difficulty_only", 250, gamed=False, difficulty=True, theta=0.2, psi_len=-0.8, gamma=0.6, longer=0.9),
    ]
    meta = dict(
        generator="scripts/make-lc-sklearn-fixture.py",
        sklearn=sklearn.__version__,
        numpy=np.__version__,
        python=sys.version.split()[0],
        note="synthetic data; expected = LogisticRegressionCV(penalty='l1', solver='liblinear', fit_intercept=False, Cs=10, cv=GroupKFold(5), tol=1e-4) as AlpacaEval length_controlled_v1 calls it; coef_tight = the same C with tol=1e-12",
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(meta=meta, cases=cases)) + "\n")
    for c in cases:
        e = c["expected"]
        print(c["name"], "C", e["C"], "coef", e["coef"], "tight", e["coef_tight"], "LC", e["lc"], "LC tight", e["lc_tight"], "se", e["lc_standard_error"])


if __name__ == "__main__":
    main()
