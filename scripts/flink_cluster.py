"""A standalone Flink cluster on this machine from the PyFlink distribution, and job submission to any cluster.

    python scripts/flink_cluster.py start [--slots 4] [--rest-port 8081]
    python scripts/flink_cluster.py submit [--py jobs/online_learning.py] [--rest-address HOST:PORT] -- JOB_ARGS...
    python scripts/flink_cluster.py status | jobs | cancel JOB_ID | stop-job JOB_ID | stop

`start` writes the project's Flink config to .cache/flink-cluster/conf (a copy of PyFlink's conf/
with the slots, ports and this Python interpreter set), keeps logs and pid files next to it, runs
the distribution's bin/start-cluster.sh and returns once the REST API reports the TaskManager's
slots (a TaskManager registers first and reports its slots after). `submit` runs
`flink run -d -py`, shipping the project's packages (-pyfs) and the Kafka connector (--jarfile);
`--rest-address` points it at another cluster (whose workers need this project's dependencies).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from jobs.fetched_deps import kafka_jars
from scripts.broker import free_port, port_open, wait_until

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".cache" / "flink-cluster"
CONF_DIR, LOG_DIR, PID_DIR, TMP_DIR, LIB_DIR = (HOME / name for name in ("conf", "log", "pid", "tmp", "lib"))
SHIP_DIR = HOME / "ship"  # jars and Python packages, bundled for `flink run`
STATE = HOME / "cluster.json"  # the REST address of the running local cluster
SUBMITTED = HOME / "submitted-jobs.json"  # job id -> the run its client started at `submit`: MLflow run, outputs
DEFAULT_JOB = REPO / "jobs" / "online_learning.py"
DAEMON_CLASSES = {"jobmanager": "StandaloneSessionClusterEntrypoint", "taskmanager": "TaskManagerRunner"}
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
SUBMIT_TIMEOUT_S = 300.0
CANCEL_TIMEOUT_S = 60.0
SAVEPOINT_TIMEOUT_S = 300.0
# A Flink job's end -> its MLflow run's end status and the reason tagged on it, and its run record's state.
RUN_ENDS = {"CANCELED": ("KILLED", "job cancelled in Flink"), "FAILED": ("FAILED", "job failed in Flink"),
            "FINISHED": ("FINISHED", "job finished in Flink")}
RECORD_ENDS = {"CANCELED": "cancelled", "FAILED": "failed", "FINISHED": "finished"}


def flink_home() -> Path:
    """The Flink distribution inside the installed pyflink package (bin/, conf/, lib/)."""
    import pyflink
    return Path(pyflink.__file__).resolve().parent


def project_packages() -> list[Path]:
    """The project's top-level packages, as pyproject.toml finds them (``jobs*`` -> ``jobs/``, sub-packages
    inside): what the Python workers import."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [REPO / pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]


def _env() -> dict[str, str]:
    env = dict(os.environ, FLINK_CONF_DIR=str(CONF_DIR), FLINK_LOG_DIR=str(LOG_DIR), FLINK_PID_DIR=str(PID_DIR))
    if LIB_DIR.is_dir():  # written by `start`: the cluster's classpath, flink-python included
        env["FLINK_LIB_DIR"] = str(LIB_DIR)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # PyFlink starts `python`
    return env


class CommandFailed(RuntimeError):
    """A distribution script exited non-zero; ``output``: all it printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class ClientError(RuntimeError):
    """The job's client (the Python script under `flink run`) exited with ``exit_code`` and said why in its
    own one-line ``error: ...`` (without that prefix here); 2: it refused to start the job."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def client_error(output: str) -> ClientError | None:
    """The client's own error line and exit status from a failed `flink run`'s output, else None.

    `flink run -py` reports any non-zero exit of the client as a Java ProgramAbortException trace; the
    client's ``error:`` line before it is what the user needs, as the local job prints it (or as
    argparse does: ``PROG: error: ...``, after the usage).
    """
    code = re.search(r"Python process exits with code: (\d+)", output)
    said = re.findall(r"^(?:[\w./ -]+: )?error: (.+)$", output, re.MULTILINE)
    return ClientError(said[-1], int(code.group(1))) if code and said else None


def _run(cmd: Sequence[str], what: str, timeout_s: float) -> str:
    """Runs a distribution script with the project's Flink env; its output, or CommandFailed with it."""
    try:
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:  # e.g. a job script that waits for its job to end, under `flink run -d`
        output = ((exc.stdout or b"") + (exc.stderr or b"")).decode(errors="replace")  # bytes, despite text=True
        raise RuntimeError(f"{what}: still running after {timeout_s:.0f} s, stopped: {' '.join(cmd)}\n"
                           f"{output[-4000:]}") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise CommandFailed(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{output[-4000:]}", output)
    return output


def _rest(rest: str, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{rest}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else {}


def rest_address(explicit: str | None = None) -> str:
    """``explicit``, else the local cluster's address from ``start``."""
    if explicit:
        return explicit
    if not STATE.is_file():
        raise RuntimeError("no local cluster is running: start one with `python scripts/flink_cluster.py start` "
                           "or pass --rest-address HOST:PORT")
    return json.loads(STATE.read_text())["rest"]


def _get(tree: dict[str, Any], dotted: str, default: object = None) -> Any:
    """``a.b.c`` from Flink's config.yaml, written nested (as ``_set`` does) or flat (``a.b.c: ...``)."""
    if dotted in tree:
        return tree[dotted]
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        head = ".".join(parts[:i])
        if isinstance(tree.get(head), dict):
            found = _get(tree[head], ".".join(parts[i:]), default)
            if found is not default:
                return found
    return default


def _set(tree: dict[str, Any], dotted: str, value: object) -> None:
    """Sets ``a.b.c`` in Flink's nested config.yaml, where a flat key next to a nested one would clash."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def write_conf(slots: int, rest_port: int) -> None:
    """PyFlink's conf/ with the project's settings; ports other than REST are free ones, not Flink's fixed 6123."""
    shutil.rmtree(CONF_DIR, ignore_errors=True)
    shutil.copytree(flink_home() / "conf", CONF_DIR)
    config = yaml.safe_load((CONF_DIR / "config.yaml").read_text())
    for key, value in {
        "taskmanager.numberOfTaskSlots": slots,
        "rest.address": "localhost", "rest.bind-address": "localhost", "rest.port": rest_port,
        "jobmanager.rpc.port": free_port(),
        "python.executable": sys.executable, "python.client.executable": sys.executable,
        "env.log.dir": str(LOG_DIR), "env.pid.dir": str(PID_DIR),  # also when bin/ scripts are run by hand
        "io.tmp.dirs": str(TMP_DIR),  # blobs and spill files: removed by `stop`, even after a kill -9
        "classloader.parent-first-patterns.additional": ["pemja."],  # see write_lib
    }.items():
        _set(config, key, value)
    (CONF_DIR / "config.yaml").write_text(yaml.safe_dump(config))
    (CONF_DIR / "masters").write_text(f"localhost:{rest_port}\n")
    for folder in (LOG_DIR, PID_DIR, TMP_DIR):
        folder.mkdir(parents=True, exist_ok=True)
    write_lib()


def write_lib() -> None:
    """The distribution's lib/ plus flink-python (links): the cluster's JVMs load PyFlink's runtime once.

    `flink run -py` ships flink-python as each job's jar; a thread-mode job loads pemja's native
    library from it, in the job's own class loader, and the JVM refuses a library already loaded by
    another class loader: on a TaskManager that ran one Python job, every later one failed
    (``NoSuchFieldException: loadedLibraryNames`` from pemja's workaround, which JDK 17 breaks). From
    lib/, flink-python's classes (``org.apache.flink.``: parent-first) and the pemja classes they use
    come from the TaskManager's own class loader for every job; ``pemja.`` parent-first (write_conf)
    keeps a job's class loader from loading its own copy when asked for pemja by name.
    """
    shutil.rmtree(LIB_DIR, ignore_errors=True)
    LIB_DIR.mkdir(parents=True)
    home = flink_home()
    for jar in sorted(home.joinpath("lib").glob("*.jar")) + sorted(home.joinpath("opt").glob("flink-python*.jar")):
        (LIB_DIR / jar.name).symlink_to(jar)


def daemon_pids(kind: str | None = None) -> list[int]:
    """JobManager / TaskManager JVMs of this project's cluster (``kind``: jobmanager, taskmanager, None: both).

    Recognised by their main class and this repo's log dir, so other Flink clusters are left alone.
    """
    classes = [DAEMON_CLASSES[kind]] if kind else list(DAEMON_CLASSES.values())
    # -ww: full command lines, however narrow ps thinks the terminal is (80 columns under pytest)
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in ps.splitlines()
            if f"-Dlog.file={LOG_DIR}/" in line and any(c in line for c in classes)]


def process_tree(pids: list[int]) -> list[int]:
    """``pids`` and every process below them (the TaskManagers' Python workers)."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for pid, ppid in (map(int, line.split()) for line in ps.splitlines()):
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(pid, signum)


def _kill(pids: list[int], what: str) -> None:
    """SIGKILL and wait until they are gone."""
    _signal(pids, signal.SIGKILL)
    wait_until(lambda: not any(map(alive, pids)), STOP_TIMEOUT_S, f"{what} (pids {pids}) to die")


def _log_tail(chars: int = 1500) -> str:
    return "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-chars:]}" for log in sorted(LOG_DIR.glob("*.log")))


def overview(rest: str) -> dict[str, Any] | None:
    """REST /overview (TaskManagers, slots, jobs), or None while the cluster does not answer."""
    try:
        return _rest(rest, "/overview")
    except OSError:
        return None


def slots_per_taskmanager() -> int:
    """taskmanager.numberOfTaskSlots of the local cluster's config (Flink's default: 1)."""
    config = yaml.safe_load((CONF_DIR / "config.yaml").read_text()) or {}
    return int(_get(config, "taskmanager.numberOfTaskSlots", 1))


def _slots_seen(info: dict[str, Any] | None) -> str:
    if info is None:
        return "REST /overview not answering"
    return ", ".join(f"{key}={info.get(key)}" for key in ("taskmanagers", "slots-total", "slots-available"))


def _daemons_alive() -> None:
    """RuntimeError when a JobManager or TaskManager JVM is gone: no point waiting for its slots then."""
    for kind, name in (("jobmanager", "JobManager"), ("taskmanager", "TaskManager")):
        if not daemon_pids(kind):
            raise RuntimeError(f"the {name} exited")


def wait_for_slots(rest: str, taskmanagers: int, slots: int, timeout_s: float = START_TIMEOUT_S,
                   also: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Waits until REST /overview reports ``taskmanagers`` TaskManagers with ``slots`` slots each; returns it.

    A TaskManager shows in /overview as soon as it registered with the JobManager, but its slots only
    once it sent its slot report: (taskmanagers, slots-total) can read (1, 0) for a while on a busy
    machine, so the TaskManager count alone does not say the cluster can run a job. ``also``: a
    further condition, called on each poll (and may raise to stop waiting). TimeoutError with what
    /overview last reported.
    """
    expected = (taskmanagers, taskmanagers * slots)
    last: dict[str, Any] | None = None

    def ready() -> bool:
        nonlocal last
        _daemons_alive()
        last = overview(rest)
        seen = (last or {}).get("taskmanagers"), (last or {}).get("slots-total")
        further = also is None or also()
        return seen == expected and further

    what = f"{taskmanagers} TaskManager(s) with {expected[1]} slots in all at http://{rest}/overview"
    try:
        wait_until(ready, timeout_s, what, 0.5, progress=True)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last seen: {_slots_seen(last)}") from None
    return last or {}


def start_cluster(slots: int = 4, rest_port: int = 8081) -> str:
    """Starts a JobManager and a TaskManager; returns the REST address once the TaskManager's slots are there."""
    if running := daemon_pids():
        raise RuntimeError(f"this project's cluster is already running (pids {running}); "
                           "`python scripts/flink_cluster.py stop` first")
    if port_open(rest_port, "localhost"):
        raise RuntimeError(f"REST port {rest_port} is already in use; pick another with --rest-port")
    rest = f"localhost:{rest_port}"
    write_conf(slots, rest_port)
    print(f"[flink_cluster] starting ({slots} slots, config {CONF_DIR}, logs {LOG_DIR})", flush=True)
    _run([str(flink_home() / "bin" / "start-cluster.sh")], "bin/start-cluster.sh", 60)
    STATE.write_text(json.dumps({"rest": rest}))

    try:
        wait_for_slots(rest, 1, slots)
    except (TimeoutError, RuntimeError) as exc:
        logs = _log_tail()
        stop_cluster()  # what did start must not outlive the failure
        raise RuntimeError(f"{exc}; logs:\n{logs}") from None
    return rest


def stop_cluster() -> None:
    """Stops the cluster and leaves no process of it, Python workers included.

    SIGTERM to every JobManager and TaskManager JVM (what bin/stop-cluster.sh sends, but that script
    stops one TaskManager per line of conf/workers, not one started later), SIGKILL to whatever is left.
    """
    jvms = daemon_pids()
    processes = process_tree(jvms)
    _signal(jvms, signal.SIGTERM)
    try:
        wait_until(lambda: not any(map(alive, processes)), STOP_TIMEOUT_S, "the cluster to stop", 0.5)
    except TimeoutError:
        _kill([pid for pid in processes if alive(pid)], "cluster processes")
    STATE.unlink(missing_ok=True)
    shutil.rmtree(PID_DIR, ignore_errors=True)
    shutil.rmtree(TMP_DIR, ignore_errors=True)


def kill_taskmanager() -> list[int]:
    """SIGKILLs the TaskManagers and their Python workers, as a machine failure would (recovery tests)."""
    pids = daemon_pids("taskmanager")
    if not pids:
        raise RuntimeError("no TaskManager of this project's cluster is running")
    _kill(process_tree(pids), "TaskManager")
    return pids


def start_taskmanager() -> None:
    """Starts one more TaskManager (bin/taskmanager.sh) and waits until the cluster has all its slots.

    That is: the new TaskManager registered with its slots, and /overview reports the slots of every
    running TaskManager and no more, so a killed TaskManager the JobManager still listed is gone too.
    """
    rest = rest_address()
    slots = slots_per_taskmanager()
    expected = len(daemon_pids("taskmanager")) + 1
    known = {tm["id"] for tm in _rest(rest, "/taskmanagers")["taskmanagers"]}
    _run([str(flink_home() / "bin" / "taskmanager.sh"), "start"], "bin/taskmanager.sh start", 60)
    new: list[dict[str, Any]] = []

    def new_one_with_slots() -> bool:
        try:
            new[:] = [tm for tm in _rest(rest, "/taskmanagers")["taskmanagers"] if tm["id"] not in known]
        except OSError:  # REST not answering for a moment: ask again on the next poll
            return False
        return any(tm.get("slotsNumber") == slots for tm in new)

    try:
        wait_for_slots(rest, expected, slots, also=new_one_with_slots)
    except TimeoutError as exc:
        reported = [(tm["id"], tm.get("slotsNumber")) for tm in new]
        raise TimeoutError(f"{exc}; new TaskManagers (id, slots): {reported or 'none'}") from None


def _cached_zip(entries: dict[str, bytes], prefix: str, suffix: str) -> Path:
    """Writes ``entries`` once to SHIP_DIR/prefix-<content hash>suffix; the same content reuses that file."""
    digest = hashlib.sha256()
    for name, data in entries.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    path = SHIP_DIR / f"{prefix}-{digest.hexdigest()[:16]}{suffix}"
    if not path.is_file():
        SHIP_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
            for name, data in entries.items():
                out.writestr(name, data)
        os.replace(partial, path)
    return path


def _one_jar(jars: list[Path]) -> Path:
    """`flink run` ships one --jarfile and silently drops any further one, so several jars become one."""
    if len(jars) == 1:
        return jars[0]
    entries: dict[str, bytes] = {}
    for jar in jars:
        with zipfile.ZipFile(jar) as zf:
            for name in zf.namelist():
                if name.startswith("META-INF/services/") and not name.endswith("/"):  # ServiceLoader lists: merged
                    entries[name] = entries.get(name, b"") + zf.read(name).rstrip(b"\n") + b"\n"
                elif name not in entries:  # else the first jar's wins (manifest, licences)
                    entries[name] = zf.read(name)
    return _cached_zip(entries, "jars", ".jar")


def _shippable(pyfiles: list[Path]) -> list[Path]:
    """Package directories go zipped: `-pyfs DIR` would put DIR's contents on the Python path, not DIR.

    Flink unpacks a shipped .zip on the workers and puts its root on their path, so the packages
    import by name there, as real files.
    """
    packages = [p for p in pyfiles if (p / "__init__.py").is_file()]
    entries = {f"{package.name}/{f.relative_to(package)}": f.read_bytes()
               for package in packages for f in sorted(package.rglob("*"))
               if f.is_file() and "__pycache__" not in f.parts}
    return [p for p in pyfiles if p not in packages] + ([_cached_zip(entries, "packages", ".zip")] if packages else [])


def submit(py_file: Path | str = DEFAULT_JOB, job_args: Sequence[str] = (), rest: str | None = None,
           jars: Sequence[Path | str] | None = None, pyfiles: Sequence[Path | str] | None = None) -> str:
    """`flink run -d -py` a PyFlink job; returns its job id.

    ``jars`` default to the Kafka connector, ``pyfiles`` to the project's packages; pass [] for none.
    ClientError when the job's client exited with an error of its own (e.g. refused to start).
    """
    address = rest_address(rest)
    jar_paths = [Path(j).resolve() for j in (kafka_jars() if jars is None else jars)]
    py_paths = _shippable([Path(p).resolve() for p in (project_packages() if pyfiles is None else pyfiles)])
    cmd = [str(flink_home() / "bin" / "flink"), "run", "-d", "-m", address, "-py", str(Path(py_file).resolve()),
           "-pyexec", sys.executable, "-pyclientexec", sys.executable]
    if jar_paths:
        cmd += ["--jarfile", str(_one_jar(jar_paths))]
    if py_paths:
        cmd += ["-pyfs", ",".join(map(str, py_paths))]
    cmd += ["--", *job_args]  # everything after `--` goes to the job, even arguments that look like flink's
    print(f"[flink_cluster] submitting {py_file} to {address}", flush=True)
    try:
        output = _run(cmd, "flink run", SUBMIT_TIMEOUT_S)
    except CommandFailed as exc:
        raise client_error(exc.output) or exc from None
    found = re.search(r"JobID ([0-9a-f]{32})", output)
    if not found:
        raise RuntimeError(f"flink run printed no job id:\n{output[-4000:]}")
    started: dict[str, str] = {}
    if run := re.search(r"MLflow run ([0-9a-f]{32}) at ([^\s;]+)", output):
        started |= {"run_id": run.group(1), "tracking_uri": run.group(2)}
    if outputs := re.search(r"^submitted; .*; outputs (.+)$", output, re.MULTILINE):
        started["output"] = outputs.group(1)
    if started:
        _submitted_update({found.group(1): started})
    return found.group(1)


def _submitted() -> dict[str, dict[str, str]]:
    return json.loads(SUBMITTED.read_text()) if SUBMITTED.is_file() else {}


def _submitted_update(update: dict[str, dict[str, str]]) -> None:
    SUBMITTED.parent.mkdir(parents=True, exist_ok=True)
    SUBMITTED.write_text(json.dumps({**_submitted(), **update}, indent=1))


def end_runs(rest: str | None = None, job_ids: Sequence[str] | None = None,
             savepoint: str | None = None) -> dict[str, str]:
    """Ends the run of each job submitted from here that Flink reports over (cancelled, failed,
    finished): its MLflow run and its output folder's run record; returns job id -> the MLflow run's status.

    A detached job's client has exited, so nothing else would: a cancelled job's MLflow run stayed
    RUNNING and its record "running" forever. ``savepoint``: the jobs were stopped with it (the run
    says so, and where; the record continues from it).
    """
    from jobs.mlflow_run import end_run, run_state  # MLflow loads in seconds: only commands that need it
    from jobs.run_folder import end_record

    address, statuses = rest_address(rest), {}
    for job_id, run in _submitted().items():
        if job_ids is not None and job_id not in job_ids:
            continue
        try:
            state = job_status(job_id, address)
        except OSError:  # not a job of this cluster (any more)
            continue
        stopped_at = savepoint or (stopped_with_savepoint(job_id, address) if state == "FINISHED" else None)
        if "output" in run and state in RECORD_ENDS:
            end_record(Path(run["output"]), job_id, "stopped" if stopped_at else RECORD_ENDS[state], stopped_at)
        if "run_id" not in run:
            continue
        status, logging_job = run_state(run["tracking_uri"], run["run_id"])
        # a run resumed by a later job is that job's to end, not this one's
        if state in RUN_ENDS and status == "RUNNING" and logging_job in (job_id, None):
            status, reason = RUN_ENDS[state]
            if stopped_at is not None:
                status, reason = "KILLED", "stopped with a savepoint; resume the job from it to continue this run"
            elif state == "FAILED":
                reason += f": {(job_failure(job_id, address).strip().splitlines() or [''])[0]}"
            end_run(run["tracking_uri"], run["run_id"], status, reason, stopped_at)
        statuses[job_id] = status
    return statuses


def stopped_with_savepoint(job_id: str, rest: str | None = None) -> str | None:
    """Where a FINISHED job's stop-with-savepoint (`flink stop`, say) put it; None if it read its input
    to the end. Such a job continues from there, so neither its MLflow run nor its record ends finished."""
    latest = _rest(rest_address(rest), f"/jobs/{job_id}/checkpoints").get("latest") or {}
    savepoint = latest.get("savepoint") or {}
    return savepoint.get("external_path") if savepoint.get("checkpoint_type") == "SYNC_SAVEPOINT" else None


def job_status(job_id: str, rest: str | None = None) -> str:
    """The job's state as the REST API reports it: RUNNING, FINISHED, FAILED, CANCELED, ..."""
    return _rest(rest_address(rest), f"/jobs/{job_id}")["state"]


def tasks_running(job_id: str, rest: str | None = None) -> bool:
    """Whether the job and all its tasks run: a restarting job still reports RUNNING as its own state."""
    job = _rest(rest_address(rest), f"/jobs/{job_id}")
    return job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"])


def job_restarts(job_id: str, rest: str | None = None) -> int:
    """How often the job restarted (after a lost TaskManager, say)."""
    metrics = _rest(rest_address(rest), f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(metrics[0]["value"]) if metrics else 0


def job_failure(job_id: str, rest: str | None = None) -> str:
    """The stack trace of the job's latest failure ("" if none): why a job is not RUNNING or FINISHED."""
    history = _rest(rest_address(rest), f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
    return history[0]["stacktrace"] if history else ""


def cancel(job_id: str, rest: str | None = None) -> None:
    """Cancels the job, waits until it is CANCELED (or otherwise over) and ends its run: MLflow KILLED,
    the output folder's record cancelled (its newest checkpoint is retained: `--resume` continues it)."""
    address = rest_address(rest)
    _rest(address, f"/jobs/{job_id}?mode=cancel", method="PATCH")
    wait_until(lambda: job_status(job_id, address) in RUN_ENDS, CANCEL_TIMEOUT_S, f"job {job_id} to cancel", 0.5)
    end_runs(address, [job_id])


def stop_job(job_id: str, directory: Path, rest: str | None = None) -> str:
    """Stops the job with a savepoint under ``directory``; returns the savepoint's location.

    The job's MLflow run ends as KILLED with the savepoint tagged, and its record stopped at the
    savepoint: `--resume` it to carry the run on.
    """
    address = rest_address(rest)
    trigger = _rest(address, f"/jobs/{job_id}/stop", method="POST",
                    body={"targetDirectory": directory.resolve().as_uri(), "drain": False})["request-id"]
    done: dict[str, Any] = {}

    def completed() -> bool:
        done.update(_rest(address, f"/jobs/{job_id}/savepoints/{trigger}"))
        return done["status"]["id"] == "COMPLETED"

    wait_until(completed, SAVEPOINT_TIMEOUT_S, f"job {job_id} to stop with a savepoint", 0.5)
    if "failure-cause" in done.get("operation", {}):
        raise RuntimeError(f"stop with a savepoint failed: {done['operation']['failure-cause'].get('class')}")
    location = done["operation"]["location"]
    wait_until(lambda: job_status(job_id, address) in RUN_ENDS, CANCEL_TIMEOUT_S, f"job {job_id} to stop", 0.5)
    end_runs(address, [job_id], savepoint=location)
    return location


def list_jobs(rest: str | None = None) -> list[dict[str, Any]]:
    return _rest(rest_address(rest), "/jobs/overview")["jobs"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start the local cluster")
    s.add_argument("--slots", type=int, default=4, help="task slots of the TaskManager (default: %(default)s)")
    s.add_argument("--rest-port", type=int, default=8081, help="REST API and web UI (default: %(default)s)")
    sub.add_parser("stop", help="stop the local cluster, leaving no process")
    sub.add_parser("status", help="the local cluster's processes, TaskManagers and slots")
    for name, what in (("jobs", "list jobs (and end the runs of jobs that are over: MLflow, run.json)"),
                       ("cancel", "cancel a job (its MLflow run ends as KILLED, its run.json cancelled)"),
                       ("stop-job", "stop a job with a savepoint (its MLflow run ends as KILLED, savepoint tagged)"),
                       ("submit", "flink run -d a PyFlink job")):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("--rest-address", help="HOST:PORT of the cluster (default: the local one)")
    sub.choices["cancel"].add_argument("job_id")
    sub.choices["stop-job"].add_argument("job_id")
    sub.choices["stop-job"].add_argument("--savepoint-dir", type=Path, default=Path("savepoints"),
                                         help="where the savepoint goes (default: %(default)s)")
    r = sub.choices["submit"]
    r.add_argument("--py", type=Path, default=DEFAULT_JOB, help="job file (default: jobs/online_learning.py)")
    r.add_argument("--jars", type=Path, nargs="+", help="default: the Kafka connector jars")
    r.add_argument("--pyfiles", type=Path, nargs="+", help="default: the project's packages")
    r.add_argument("job_args", nargs="*", metavar="-- JOB_ARGS", help="arguments for the job, after --")
    args = p.parse_args(argv)

    try:
        if args.command == "start":
            rest = start_cluster(args.slots, args.rest_port)
            print(f"Flink cluster ready: web UI and REST at http://{rest}")
        elif args.command == "stop":
            stop_cluster()
            print("Flink cluster stopped")
        elif args.command == "status":
            print(f"processes: { {kind: daemon_pids(kind) for kind in DAEMON_CLASSES} }")
            rest = rest_address() if STATE.is_file() else None
            info = overview(rest) if rest else None
            print(f"REST {rest}: {json.dumps(info)}" if info else "REST: not answering")
        elif args.command == "jobs":
            runs = end_runs(args.rest_address)
            for job in list_jobs(args.rest_address):
                run = f" (MLflow run {runs[job['jid']]})" if job["jid"] in runs else ""
                print(job["jid"], job["state"], job["name"] + run)
        elif args.command == "stop-job":
            location = stop_job(args.job_id, args.savepoint_dir, args.rest_address)
            print(f"job {args.job_id} stopped; savepoint {location}")
        elif args.command == "cancel":
            cancel(args.job_id, args.rest_address)
            print(f"job {args.job_id}: {job_status(args.job_id, args.rest_address)}")
        else:
            job_id = submit(args.py, args.job_args, args.rest_address, args.jars, args.pyfiles)
            print(f"submitted job {job_id}\nFlink web UI     http://{rest_address(args.rest_address)}/#/job/running/{job_id}"
                  f"\nwhen it is over  `python scripts/flink_cluster.py jobs` ends its MLflow run"
                  f"\ncancel / stop    `python scripts/flink_cluster.py cancel {job_id}` / `stop-job {job_id}`")
    except ClientError as exc:  # the client's own one line, as the local job prints it; 2: start refused
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (RuntimeError, FileNotFoundError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
