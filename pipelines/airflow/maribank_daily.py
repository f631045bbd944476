"""MariBank into the warehouse under Airflow 3: the nightly job and a backfill for years of history.

DAG `maribank_daily` (one run per UTC day, data interval [00:00, 24:00) UTC, `catchup=True` so a
start_date in the past replays one interval per run):

    active_accounts ─► sync (mapped: one task per account) ─► catch_up ─► reconcile ─► portal_export

- `active_accounts`: `maribank-etl accounts --status ACTIVE,FROZEN --format json`.
- `sync[account]`: `maribank-etl sync --config PIPELINE --start <data_interval_start>
  --end <data_interval_end> --accounts=<account>` — one account, the run's interval.
- `catch_up`: `maribank-etl sync --config PIPELINE --incremental --start <data_interval_start>`,
  what the API published late and the status changes since (per-account cursors).
- `reconcile`: `maribank-etl reconcile --dest DEST --start DAY --end DAY+1` for the account-local
  business days whose statements came out during the interval in every zone. A statement of local
  day D is generated at 02:00 account-local on D+1; in the westernmost zone (UTC−12) that is
  D+1 14:00 UTC, so the interval ending at 00:00 UTC on day E reconciles day E−2 (days before
  start_date + 1, whose ledger was never synced, are left out). `depends_on_past`: a day is
  reconciled only after the previous run's reconcile, which ran after that run's syncs — the ledger
  of a local day spans up to three UTC intervals. A reconcile that fails (exit 5) holds the next
  ones until it is cleared or marked success.
- `portal_export`: the same days against the merchant portal's Excel exports (后台导出报表, contract
  §9) that finance downloads into a folder: `maribank-etl reconcile --dest DEST --start DAY
  --end DAY+1 --portal-export FOLDER` (the other checks run again with it; they passed in
  `reconcile`, so an exit 5 here is the exports'). The folder is the Airflow Variable
  `MARIBANK_PORTAL_EXPORTS`, else the environment variable `MARIBANK_PORTAL_EXPORTS`; with
  neither, the task logs that and is skipped.

DAG `maribank_backfill` (triggered by hand with params `start`, `end` — UTC days, end exclusive —
and `window_days`, default 7): `backfill[account × window]` runs
`maribank-etl backfill --config PIPELINE --start W0 --end W1 --accounts=<account>` for every
ACTIVE account and every window; each is checkpointed in the destination, so a retried or
re-triggered window skips what it finished.

No shell is involved: every task runs the binary with `subprocess` and an argument list, so an
account id from the API (spaces, `$(…)`, quotes) reaches the binary as one argument. An id with a
comma or NUL cannot be passed (`--accounts` is comma-separated) and fails its task.

Exit codes of `maribank-etl` (README "Exit codes") and what the task does:

    0  success
    2  usage or configuration error  -> AirflowFailException: failed, no retry (fix the config)
    3  authentication or permission  -> AirflowFailException: failed, no retry (fix the key)
    4  transient after the binary's own retries (5xx, timeouts, lease held, storage)
                                     -> an ordinary exception: Airflow retries, 5 min doubling to 1 h
    5  data-quality alert (volume drop, control totals; reconcile: unexplained differences)
                                     -> AirflowFailException: failed visibly, no retry (look at the
                                        run report or the reconcile report)
    other (killed, crashed)          -> an ordinary exception: retried
The exception message ends with the last lines of the binary's stderr (and of its stdout: the run
summary, the alert, the report's path).

The binary: the Airflow Variable `MARIBANK_ETL_BIN`, else the environment variable
`MARIBANK_ETL_BIN` (a path to the executable), else `maribank-etl` on PATH (e.g. from the wheel);
each task logs which one it used. The workers' environment holds MARIBANK_BASE_URL,
MARIBANK_ACCESS_KEY_ID and MARIBANK_SECRET_ACCESS_KEY (or _FILE) — from a secrets backend, never
from this file — and MARIBANK_PIPELINE, the pipeline TOML (default `pipelines/daily.toml`; its
`destination` is where `reconcile` reads; relative paths are relative to the worker's working
directory). At most API_PARALLELISM syncs or backfill windows run at once; each process keeps to
the TOML's `qps`, so keep qps × API_PARALLELISM within the key's budget.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import shutil
import subprocess
import threading
from datetime import date, datetime, timedelta, timezone

from airflow.sdk import DAG, Param, Variable, get_current_context, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.0
    from airflow.timetables.interval import CronDataIntervalTimetable
try:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

log = logging.getLogger("maribank_etl.airflow")

BIN_SETTING = "MARIBANK_ETL_BIN"
PORTAL_EXPORTS_SETTING = "MARIBANK_PORTAL_EXPORTS"
BIN_NAME = "maribank-etl"
DEFAULT_PIPELINE = "pipelines/daily.toml"
STDERR_TAIL_LINES = 20
STDOUT_TAIL_LINES = 10
# Processes pulling from the API at once (mapped syncs, backfill windows), over all runs.
API_PARALLELISM = 4

EXIT_USAGE, EXIT_AUTH, EXIT_TRANSIENT, EXIT_ALERT = 2, 3, 4, 5
EXIT_MEANING = {
    EXIT_USAGE: "configuration or usage error: fix the flag, TOML or environment variable named; not retried",
    EXIT_AUTH: "authentication or permission refused: fix the key or its grants; not retried",
    EXIT_TRANSIENT: "transient failure after the binary's own retries; Airflow retries with back-off",
    EXIT_ALERT: "data-quality alert: look at the run report (_runs/) or the reconcile report (_reports/); not retried",
}
PERMANENT_EXITS = (EXIT_USAGE, EXIT_AUTH, EXIT_ALERT)

# A statement of local day D is generated at 02:00 local on D+1; in UTC−12 that is D+1 14:00 UTC.
STATEMENTS_OUT_EVERYWHERE_AFTER = timedelta(hours=14)


class EtlTransientError(AirflowException):
    """maribank-etl exited 4 (or was killed): the task fails and Airflow retries it."""


# --- The command lines (pure functions: pipelines/airflow/test_dag.py checks them against the
# README). Each returns the arguments after the binary's path.


def accounts_argv() -> list[str]:
    return ["accounts", "--status", "ACTIVE,FROZEN", "--format", "json"]


def account_arg(account: str) -> str:
    """`--accounts=<id>`: one argument, so an id starting with `-` is not taken for a flag."""
    if not isinstance(account, str) or not account or "," in account or "\0" in account:
        raise AirflowFailException(
            f"account id {account!r} cannot be passed to maribank-etl: --accounts is"
            " comma-separated and an argument cannot hold NUL"
        )
    return f"--accounts={account}"


def sync_argv(pipeline: str, account: str, start: datetime, end: datetime) -> list[str]:
    return [
        "sync", "--config", pipeline,
        "--start", start.isoformat(), "--end", end.isoformat(),
        account_arg(account),
    ]  # fmt: skip


def incremental_argv(pipeline: str, start: datetime) -> list[str]:
    return ["sync", "--config", pipeline, "--incremental", "--start", start.isoformat()]


def reconcile_argv(dest: str, first: date, end: date) -> list[str]:
    return ["reconcile", "--dest", dest, "--start", first.isoformat(), "--end", end.isoformat()]


def portal_export_argv(dest: str, first: date, end: date, exports: str) -> list[str]:
    return [*reconcile_argv(dest, first, end), "--portal-export", exports]


def backfill_argv(pipeline: str, account: str, start: str, end: str) -> list[str]:
    return [
        "backfill", "--config", pipeline, "--start", start, "--end", end, account_arg(account),
    ]  # fmt: skip


def last_day_out_everywhere(t: datetime) -> date:
    """The last account-local business day whose statement is out in every zone at instant `t`."""
    return (t.astimezone(timezone.utc) - STATEMENTS_OUT_EVERYWHERE_AFTER).date() - timedelta(days=1)


def reconcile_days(start: datetime, end: datetime, first_synced: date) -> tuple[date, date] | None:
    """The business days [first, end) the run of data interval [start, end) reconciles: those whose
    statements came out in every zone during the interval, and whose ledger lies wholly in
    intervals from `first_synced` (the DAG's first UTC day) on; None when there is none."""
    first = max(last_day_out_everywhere(start), first_synced) + timedelta(days=1)
    stop = last_day_out_everywhere(end) + timedelta(days=1)
    return (first, stop) if first < stop else None


def backfill_windows(start: date, end: date, days: int) -> list[dict[str, str]]:
    """[start, end) cut into windows of `days` days (the last one shorter)."""
    if days < 1:
        raise AirflowFailException(f"window_days must be at least 1, got {days}")
    if start >= end:
        raise AirflowFailException(f"start {start} must be before end {end} (end is exclusive)")
    out = []
    while start < end:
        stop = min(start + timedelta(days=days), end)
        out.append({"start": start.isoformat(), "end": stop.isoformat()})
        start = stop
    return out


# --- Running the binary.


def _variable(key: str) -> str | None:
    try:
        return Variable.get(key, default=None)
    except Exception as e:  # no Airflow context (a script) or the backend is down
        log.warning("cannot read the Airflow Variable %s (%s); trying the environment", key, e)
        return None


def find_binary() -> str:
    """The maribank-etl executable: Airflow Variable, then environment variable, then PATH."""
    for source, value in (
        (f"the Airflow Variable {BIN_SETTING}", _variable(BIN_SETTING)),
        (f"the environment variable {BIN_SETTING}", os.environ.get(BIN_SETTING)),
    ):
        if value:
            if not (os.path.isfile(value) and os.access(value, os.X_OK)):
                raise AirflowFailException(f"{source} is {value!r}, which is not an executable file")
            log.info("using maribank-etl at %s (set by %s)", value, source)
            return value
    found = shutil.which(BIN_NAME)
    if not found:
        raise AirflowFailException(
            f"{BIN_NAME} is not on PATH and {BIN_SETTING} is set neither as an Airflow Variable nor"
            " in the environment: pip install the maribank_etl wheel into the workers' environment,"
            f" or set {BIN_SETTING} to the binary's path"
        )
    log.info("using maribank-etl at %s (found on PATH)", found)
    return found


def portal_exports_folder() -> str | None:
    """The folder of the portal's Excel exports: the Airflow Variable, then the environment
    variable MARIBANK_PORTAL_EXPORTS; None when neither is set."""
    for source, value in (
        (f"the Airflow Variable {PORTAL_EXPORTS_SETTING}", _variable(PORTAL_EXPORTS_SETTING)),
        (f"the environment variable {PORTAL_EXPORTS_SETTING}", os.environ.get(PORTAL_EXPORTS_SETTING)),
    ):
        if value:
            log.info("portal exports in %s (set by %s)", value, source)
            return value
    return None


def pipeline_file() -> str:
    return os.environ.get("MARIBANK_PIPELINE") or DEFAULT_PIPELINE


def pipeline_destination(path: str) -> str:
    """The `destination` of the pipeline TOML (what `reconcile --dest` reads)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            dest = tomllib.load(f).get("destination")
    except (OSError, ValueError) as e:
        raise AirflowFailException(f"cannot read the pipeline file {path}: {e}") from e
    if not isinstance(dest, str) or not dest:
        raise AirflowFailException(f"the pipeline file {path} has no `destination`")
    return dest


def run_etl(args: list[str]) -> str:
    """Runs maribank-etl with `args` (no shell), streams its output into the task log and returns
    its stdout; a non-zero exit raises what the module docstring's table says."""
    argv = [find_binary(), *args]
    log.info("running %s", shlex.join(argv))
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    stdout: list[str] = []
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, errors="replace",
    )  # fmt: skip

    def read_stdout() -> None:
        for line in proc.stdout:
            stdout.append(line)
            log.info("%s", line.rstrip("\n"))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        for line in proc.stderr:
            line = line.rstrip("\n")
            tail.append(line)
            log.info("%s", line)
        reader.join()
        code = proc.wait()
    finally:  # the task timed out or was stopped: do not leave the binary running
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if code == 0:
        return "".join(stdout)
    what = EXIT_MEANING.get(code, "killed, crashed or an unknown status; Airflow retries")
    message = f"maribank-etl {args[0]} exited with status {code} ({what}).\nLast lines of its stderr:\n"
    message += "\n".join(tail)
    if stdout:  # the run summary, alerts and the reconcile report's path
        message += "\nLast lines of its stdout:\n" + "".join(stdout[-STDOUT_TAIL_LINES:]).rstrip("\n")
    if code in PERMANENT_EXITS:
        raise AirflowFailException(message)
    raise EtlTransientError(message)


# --- Tasks shared by both DAGs.

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(hours=1),
}


@task(execution_timeout=timedelta(minutes=10))
def active_accounts() -> list[str]:
    """The ids of the accounts a night pulls: every one not CLOSED (a FROZEN store still has
    chargebacks, payouts and reserve movements)."""
    out = run_etl(accounts_argv())
    try:
        ids = json.loads(out)
    except ValueError as e:
        raise EtlTransientError(f"maribank-etl accounts printed no JSON array: {out[:200]!r}") from e
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise AirflowFailException(f"maribank-etl accounts printed {out[:200]!r}, not a list of ids")
    log.info("%d accounts (ACTIVE or FROZEN)", len(ids))
    return ids


# --- The nightly job.

with DAG(
    dag_id="maribank_daily",
    description="MariBank ledger, settlements, statements and fx rates into the warehouse, then reconciled",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=True,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=["maribank", "finance"],
) as daily:

    @task(
        max_active_tis_per_dag=API_PARALLELISM,
        execution_timeout=timedelta(hours=2),
        map_index_template="{{ maribank_account }}",
    )
    def sync(account: str) -> None:
        """One account, the run's data interval."""
        ctx = get_current_context()
        ctx["maribank_account"] = account
        start, end = ctx["data_interval_start"], ctx["data_interval_end"]
        run_etl(sync_argv(pipeline_file(), account, start, end))

    @task(execution_timeout=timedelta(hours=2))
    def catch_up() -> None:
        """The incremental pass: late publications and status changes, every ACTIVE account."""
        run_etl(incremental_argv(pipeline_file(), get_current_context()["data_interval_start"]))

    @task(execution_timeout=timedelta(hours=1), depends_on_past=True)
    def reconcile() -> None:
        """对账 of the business days whose statements came out during the interval."""
        ctx = get_current_context()
        first_synced = ctx["dag"].start_date.astimezone(timezone.utc).date()
        days = reconcile_days(ctx["data_interval_start"], ctx["data_interval_end"], first_synced)
        if days is None:
            raise AirflowSkipException("no business day became final in every zone during this interval")
        pipeline = pipeline_file()
        run_etl(reconcile_argv(pipeline_destination(pipeline), *days))

    @task(execution_timeout=timedelta(hours=1))
    def portal_export() -> None:
        """The same days against the merchant portal's Excel exports (每日对比API总入账额与后台导出Excel)."""
        folder = portal_exports_folder()
        if folder is None:
            log.info(
                "no portal export folder configured (Airflow Variable or environment variable %s):"
                " the portal-export check is skipped",
                PORTAL_EXPORTS_SETTING,
            )
            raise AirflowSkipException(f"{PORTAL_EXPORTS_SETTING} is not set")
        ctx = get_current_context()
        first_synced = ctx["dag"].start_date.astimezone(timezone.utc).date()
        days = reconcile_days(ctx["data_interval_start"], ctx["data_interval_end"], first_synced)
        if days is None:
            raise AirflowSkipException("no business day became final in every zone during this interval")
        run_etl(portal_export_argv(pipeline_destination(pipeline_file()), *days, folder))

    sync.expand(account=active_accounts()) >> catch_up() >> reconcile() >> portal_export()


# --- Years of history, by hand.

with DAG(
    dag_id="maribank_backfill",
    description="MariBank history into the warehouse: every ACTIVE account × every window of a range",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "start": Param(type="string", format="date", description="First UTC day (inclusive)"),
        "end": Param(type="string", format="date", description="UTC day after the last one (exclusive)"),
        "window_days": Param(7, type="integer", minimum=1, maximum=31, description="Days per window"),
    },
    tags=["maribank", "finance", "backfill"],
) as backfill_dag:

    @task
    def windows() -> list[dict[str, str]]:
        """The range cut into windows."""
        p = get_current_context()["params"]
        try:
            start, end = date.fromisoformat(p["start"]), date.fromisoformat(p["end"])
        except (TypeError, ValueError) as e:
            raise AirflowFailException(f"params start and end must be YYYY-MM-DD days: {e}") from e
        out = backfill_windows(start, end, int(p["window_days"]))
        log.info("%d windows of %s days from %s to %s", len(out), p["window_days"], start, end)
        return out

    @task(
        max_active_tis_per_dag=API_PARALLELISM,
        execution_timeout=timedelta(hours=6),
        map_index_template="{{ maribank_window }}",
    )
    def backfill(account: str, window: dict[str, str]) -> None:
        """One account, one window (checkpointed: a retry resumes)."""
        get_current_context()["maribank_window"] = f"{account} {window['start']}..{window['end']}"
        run_etl(backfill_argv(pipeline_file(), account, window["start"], window["end"]))

    backfill.expand(account=active_accounts(), window=windows())
