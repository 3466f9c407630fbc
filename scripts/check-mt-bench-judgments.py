"""Compares `sppo bench mt-bench --judgments FILE --out DIR` (DIR/results.json) with FastChat's show_result.py
arithmetic done in pandas (single mode: drop score -1, mean per model of turn 1, of turn 2, and of all ratings).

    /work/venvs/sk/bin/python scripts/check-mt-bench-judgments.py JUDGMENTS.jsonl DIR
"""

import json
import sys

import pandas as pd


def main(judgments, out):
    df = pd.read_json(judgments, lines=True)[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    t1 = df[df["turn"] == 1].groupby("model")["score"].mean()
    t2 = df[df["turn"] == 2].groupby("model")["score"].mean()
    avg = df.groupby("model")["score"].mean()
    worst = 0.0
    for r in json.load(open(f"{out}/results.json"))["models"]:
        m = r["model"]
        d = max(abs(r["first_turn"] - t1[m]), abs(r["second_turn"] - t2[m]), abs(r["average"] - avg[m]))
        worst = max(worst, d)
        print(f"{m}: pandas {t1[m]:.6f} {t2[m]:.6f} {avg[m]:.6f}; sppo {r['first_turn']:.6f} {r['second_turn']:.6f} {r['average']:.6f}; max |diff| {d:.2e}")
    print(f"max |diff| over models: {worst:.2e}")
    return 0 if worst < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
