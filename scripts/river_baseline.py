"""River's per-event logistic regression over a JSONL file of events: a baseline for scripts/bench.py
and scripts/evaluate.py.

    python scripts/river_baseline.py EVENTS.jsonl [--numeric amount,price,...] [--scores SCORES.jsonl]

Every line is parsed (json.loads); its numeric features (those named by --numeric, else every
int or float value) go through StandardScaler | LogisticRegression (SGD): predict_proba_one on
every event, then learn_one on the labeled ones. Prints one JSON line {"seconds", "events"}
timing the loop, parsing included, not the reading of the file. ``--scores`` also writes
``{"event_id", "score"}`` per labeled event: the prequential score (predicted before learning).

The loop runs in a venv of its own (River wants a newer numpy than PyFlink allows), so this
module imports nothing from the project and River only inside ``main``; :func:`river_python`
(called from the project's venv) creates that venv on first use.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RIVER_VENV = REPO / ".cache" / "river-venv"
RIVER_REQUIREMENT = "river==0.26.*"


def river_python() -> Path:
    """The python of River's venv, created on first use: River may want a newer numpy than PyFlink allows."""
    python, done = RIVER_VENV / "bin" / "python", RIVER_VENV / ".installed"
    if not done.exists() or done.read_text() != RIVER_REQUIREMENT:
        print(f"creating {RIVER_VENV.relative_to(REPO)} with {RIVER_REQUIREMENT} (first use) ...",
              file=sys.stderr, flush=True)
        for cmd in ([sys.executable, "-m", "venv", "--clear", str(RIVER_VENV)],
                    [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", RIVER_REQUIREMENT]):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        done.write_text(RIVER_REQUIREMENT)
    return python


def main(argv: list[str] | None = None) -> int:
    from river import linear_model, optim, preprocessing

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("events", type=Path)
    p.add_argument("--numeric", help="comma-separated feature names; default: every int or float feature")
    p.add_argument("--scores", type=Path, help="write the prequential score of every labeled event here")
    a = p.parse_args(argv)
    names = a.numeric.split(",") if a.numeric else None
    lines = a.events.read_text().splitlines()
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
    scores = []
    started = time.perf_counter()
    for line in lines:
        event = json.loads(line)
        raw = event["features"]
        x = ({n: raw[n] for n in names} if names else
             {k: v for k, v in raw.items() if type(v) in (int, float)})
        p_positive = model.predict_proba_one(x).get(True, 0.5)
        if event["label"] is not None:
            scores.append((event["event_id"], p_positive))
            model.learn_one(x, event["label"])
    print(json.dumps({"seconds": time.perf_counter() - started, "events": len(lines)}))
    if a.scores:
        a.scores.write_text("".join(json.dumps({"event_id": e, "score": s}) + "\n" for e, s in scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
