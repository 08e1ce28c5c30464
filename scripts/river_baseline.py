"""River's per-event logistic regression over a JSONL file of events: a baseline for scripts/bench.py.

    python scripts/river_baseline.py EVENTS.jsonl [--numeric amount,price,...]

Every line is parsed (json.loads); its numeric features (those named by --numeric, else every
int or float value) go through StandardScaler | LogisticRegression (SGD): predict_proba_one on
every event, then learn_one on the labeled ones. Prints one JSON line {"seconds", "events"}
timing the loop, parsing included, not the reading of the file.

It runs in a venv of its own (River wants a newer numpy than PyFlink allows), so it imports
nothing from the project.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from river import linear_model, optim, preprocessing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("events", type=Path)
    p.add_argument("--numeric", help="comma-separated feature names; default: every int or float feature")
    a = p.parse_args(argv)
    names = a.numeric.split(",") if a.numeric else None
    lines = a.events.read_text().splitlines()
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
    started = time.perf_counter()
    for line in lines:
        event = json.loads(line)
        raw = event["features"]
        x = ({n: raw[n] for n in names} if names else
             {k: v for k, v in raw.items() if type(v) in (int, float)})
        model.predict_proba_one(x)
        if event["label"] is not None:
            model.learn_one(x, event["label"])
    print(json.dumps({"seconds": time.perf_counter() - started, "events": len(lines)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
