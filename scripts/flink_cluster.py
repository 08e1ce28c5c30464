"""A standalone Flink cluster from the PyFlink distribution, and job submission with `flink run -py`.

    python scripts/flink_cluster.py start [--slots 4] [--rest-port 8081]
    python scripts/flink_cluster.py submit [--rest-address localhost:8081] -- --config conf/kafka-cluster.yaml
    python scripts/flink_cluster.py jobs | cancel JOB_ID | stop

`start` writes the project's Flink config to .cache/flink-cluster/conf (a copy of PyFlink's with
the slots, ports and Python interpreter set) and logs to .cache/flink-cluster/log. `submit`
works the same against any remote cluster given its REST address: it passes the job's Python
packages (-pyfs), the Kafka connector jars (--jarfile) and the interpreter (-pyexec/-pyclientexec).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

# Run as a plain script from anywhere: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.broker import free_port, wait_until  # noqa: E402
from scripts.fetch_deps import kafka_jars  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".cache" / "flink-cluster"
STATE = HOME / "cluster.json"
JOB_FILE = REPO / "jobs" / "online_learning.py"
PY_PACKAGES = ("conf", "operators", "udfs", "jobs", "scripts")
START_TIMEOUT_S = 90.0


def flink_home() -> Path:
    import pyflink
    return Path(pyflink.__file__).resolve().parent


def _env() -> dict[str, str]:
    env = dict(os.environ, FLINK_CONF_DIR=str(HOME / "conf"), FLINK_LOG_DIR=str(HOME / "log"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # workers start `python`
    return env


def _rest(path: str, rest: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"http://{rest}{path}", method=method)
    with urllib.request.urlopen(request, timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else {}


def _set(tree: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def write_conf(slots: int, rest_port: int) -> None:
    conf = HOME / "conf"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(flink_home() / "conf", conf)
    tree = yaml.safe_load((conf / "config.yaml").read_text())
    for key, value in {
        "taskmanager.numberOfTaskSlots": slots, "rest.port": rest_port, "rest.address": "localhost",
        "rest.bind-address": "localhost", "jobmanager.rpc.port": free_port(),
        "taskmanager.memory.process.size": "2048m", "parallelism.default": 1,
        "python.executable": sys.executable, "python.client.executable": sys.executable,
    }.items():
        _set(tree, key, value)
    (conf / "config.yaml").write_text(yaml.safe_dump(tree))
    (HOME / "log").mkdir(parents=True, exist_ok=True)


def start_cluster(slots: int = 4, rest_port: int | None = None) -> str:
    """Start a JobManager and a TaskManager; returns the REST address once a TaskManager registered."""
    rest = f"localhost:{rest_port or free_port()}"
    write_conf(slots, int(rest.split(":")[1]))
    subprocess.run([str(flink_home() / "bin" / "start-cluster.sh")], env=_env(), check=True,
                   stdout=subprocess.DEVNULL)
    STATE.write_text(json.dumps({"rest": rest}))

    def has_taskmanager() -> bool:
        try:
            return _rest("/overview", rest).get("taskmanagers", 0) >= 1
        except OSError:
            return False

    wait_until(has_taskmanager, START_TIMEOUT_S, f"Flink cluster at {rest} (logs: {HOME / 'log'})", 0.5)
    return rest


def rest_address(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if not STATE.exists():
        raise SystemExit("no local cluster started; run `python scripts/flink_cluster.py start` or pass --rest-address")
    return json.loads(STATE.read_text())["rest"]


def stop_cluster() -> None:
    """Stop the cluster's processes; a TaskManager that was killed and restarted is stopped too."""
    subprocess.run([str(flink_home() / "bin" / "stop-cluster.sh")], env=_env(), stdout=subprocess.DEVNULL, check=False)
    for pid in cluster_pids():
        subprocess.run(["kill", "-9", str(pid)], check=False)
    STATE.unlink(missing_ok=True)


def cluster_pids() -> list[int]:
    """Processes started with this project's cluster log dir (JobManager, TaskManagers)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    marker = str(HOME / "log")
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if marker in line and "java" in line]


def submit(job_args: list[str], rest: str | None = None) -> str:
    """`flink run -d -py` the job; returns the job id that the client printed."""
    address = rest_address(rest)
    cmd = [str(flink_home() / "bin" / "flink"), "run", "-d", "-m", address, "-py", str(JOB_FILE),
           "-pyexec", sys.executable, "-pyclientexec", sys.executable,
           "-pyfs", ",".join(str(REPO / p) for p in PY_PACKAGES)]
    for jar in kafka_jars():
        cmd += ["--jarfile", str(jar)]
    cmd += [*job_args, "--set", "job.wait_for_completion=false"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=REPO)
    found = re.search(r"JobID ([0-9a-f]{32})", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"flink run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return found.group(1)


def job_status(job_id: str, rest: str | None = None) -> str:
    return _rest(f"/jobs/{job_id}", rest_address(rest))["state"]


def cancel(job_id: str, rest: str | None = None) -> None:
    address = rest_address(rest)
    _rest(f"/jobs/{job_id}?mode=cancel", address, method="PATCH")
    wait_until(lambda: job_status(job_id, address) == "CANCELED", 60, f"cancellation of {job_id}", 0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start")
    s.add_argument("--slots", type=int, default=4)
    s.add_argument("--rest-port", type=int)
    sub.add_parser("stop")
    j = sub.add_parser("jobs")
    j.add_argument("--rest-address")
    c = sub.add_parser("cancel")
    c.add_argument("job_id")
    c.add_argument("--rest-address")
    r = sub.add_parser("submit", help="arguments after -- go to the job (e.g. --config, --set)")
    r.add_argument("--rest-address")
    r.add_argument("job_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.command == "start":
        print(f"Flink cluster ready: web UI and REST at http://{start_cluster(args.slots, args.rest_port)}")
    elif args.command == "stop":
        stop_cluster()
        print("Flink cluster stopped")
    elif args.command == "jobs":
        for job in _rest("/jobs/overview", rest_address(args.rest_address))["jobs"]:
            print(job["jid"], job["state"], job["name"])
    elif args.command == "cancel":
        cancel(args.job_id, args.rest_address)
        print(f"job {args.job_id} canceled")
    else:
        job_args = [a for a in args.job_args if a != "--"]
        print(f"submitted job {submit(job_args, args.rest_address)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
