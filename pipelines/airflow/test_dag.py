"""The fast check of the DAGs with a real Airflow install, before the real run (tests/it/airflow.rs):
both DAGs parse and have the documented shape, the command lines are the ones the README
documents, the business days reconciled are those whose statements are out, and the exit codes of
the binary become what Airflow needs (run against a stand-in binary, with a hostile account id).

Run: AIRFLOW_HOME=$(mktemp -d) python pipelines/airflow/test_dag.py   (from the repository root)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "pipelines" / "airflow"
UTC = timezone.utc
passed = 0


def check(name: str, cond: bool, detail: object = "") -> None:
    global passed
    assert cond, f"{name}: {detail}"
    passed += 1


def readme_block(marker: str) -> str:
    """The fenced code block that follows `<!-- marker -->` in the README."""
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, f"README has no block marked {marker}"
    return m.group(1).strip()


def command(argv: list[str]) -> str:
    return shlex.join(["maribank-etl", *argv])


def raises(fn, exc_type):
    try:
        fn()
    except exc_type as e:
        return e
    except Exception as e:  # noqa: BLE001 - report the wrong type
        raise AssertionError(f"expected {exc_type.__name__}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"expected {exc_type.__name__}, nothing raised")


def check_shape() -> None:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(FOLDER))
    check("no import errors", not bag.import_errors, bag.import_errors)
    check("both DAGs", set(bag.dags) == {"maribank_daily", "maribank_backfill"}, list(bag.dags))

    daily = bag.dags["maribank_daily"]
    check("catchup", daily.catchup is True)
    tt = daily.timetable
    check(
        "a data interval of one UTC day (Airflow 3's @daily is a zero-length trigger)",
        type(tt).__name__ == "CronDataIntervalTimetable" and tt.expression == "0 0 * * *" and str(tt.timezone) == "UTC",
        tt,
    )
    tasks = {t.task_id: t for t in daily.tasks}
    check("nightly tasks", set(tasks) == {"active_accounts", "sync", "catch_up", "reconcile", "portal_export"}, set(tasks))
    check("sync mapped over the accounts", tasks["sync"].is_mapped and tasks["sync"].upstream_task_ids == {"active_accounts"})
    check("catch_up after every sync", tasks["catch_up"].upstream_task_ids == {"sync"})
    check("reconcile after catch_up", tasks["reconcile"].upstream_task_ids == {"catch_up"})
    check("reconcile waits for the previous run's", tasks["reconcile"].depends_on_past is True)
    check("portal_export after reconcile", tasks["portal_export"].upstream_task_ids == {"reconcile"})
    for t in tasks.values():
        check(f"{t.task_id}: 3 retries with back-off", t.retries == 3 and t.retry_exponential_backoff, t.retries)

    backfill = bag.dags["maribank_backfill"]
    check("backfill is triggered by hand", type(backfill.timetable).__name__ == "NullTimetable", backfill.timetable)
    check("backfill params", set(backfill.params.keys()) == {"start", "end", "window_days"}, backfill.params)
    bt = {t.task_id: t for t in backfill.tasks}
    check("backfill tasks", set(bt) == {"active_accounts", "windows", "backfill"}, set(bt))
    check("backfill mapped over accounts × windows", bt["backfill"].is_mapped and bt["backfill"].upstream_task_ids == {"active_accounts", "windows"})


def check_commands(m) -> None:
    s, e = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    for marker, argv in [
        ("airflow-accounts-command", m.accounts_argv()),
        ("airflow-sync-command", m.sync_argv("pipelines/daily.toml", "ACC-SG-0001", s, e)),
        ("airflow-incremental-command", m.incremental_argv("pipelines/daily.toml", s)),
        ("airflow-reconcile-command", m.reconcile_argv("./warehouse", *m.reconcile_days(s, e, date(2026, 1, 1)))),
        ("airflow-portal-command", m.portal_export_argv("./warehouse", *m.reconcile_days(s, e, date(2026, 1, 1)), "/data/portal-exports")),
        ("airflow-backfill-command", m.backfill_argv("pipelines/daily.toml", "ACC-SG-0001", "2024-01-01", "2024-01-08")),
    ]:
        check(marker, command(argv) == readme_block(marker), f"\nDAG:    {command(argv)}\nREADME: {readme_block(marker)}")
    check("an id starting with - stays a value", m.account_arg("-x") == "--accounts=-x")
    for bad in ["A,B", "", "A\0B"]:
        raises(lambda: m.account_arg(bad), m.AirflowFailException)

    # Reconciled days: statements of local day D are out in every zone (UTC−12 the last) at D+1 14:00 UTC.
    first = date(2026, 1, 1)
    days = lambda s, e: m.reconcile_days(datetime.fromisoformat(s), datetime.fromisoformat(e), first)  # noqa: E731
    check("nightly: E−2", days("2026-11-24T00:00+00:00", "2026-11-25T00:00+00:00") == (date(2026, 11, 23), date(2026, 11, 24)))
    check("one whole week", days("2026-11-17T00:00+00:00", "2026-11-24T00:00+00:00") == (date(2026, 11, 16), date(2026, 11, 23)))
    check("out at 14:00 UTC, not before", days("2026-11-24T00:00+00:00", "2026-11-24T13:59+00:00") is None)
    check("out at 14:00 UTC", days("2026-11-24T00:00+00:00", "2026-11-24T14:00+00:00") == (date(2026, 11, 23), date(2026, 11, 24)))
    check("first intervals: nothing synced before the start", days("2026-01-01T00:00+00:00", "2026-01-02T00:00+00:00") is None)
    check("second interval: still nothing", days("2026-01-02T00:00+00:00", "2026-01-03T00:00+00:00") is None)
    check("third interval: the start's next day", days("2026-01-03T00:00+00:00", "2026-01-04T00:00+00:00") == (date(2026, 1, 2), date(2026, 1, 3)))

    w = m.backfill_windows(date(2026, 1, 1), date(2026, 1, 20), 7)
    check("windows", w == [{"start": "2026-01-01", "end": "2026-01-08"}, {"start": "2026-01-08", "end": "2026-01-15"}, {"start": "2026-01-15", "end": "2026-01-20"}], w)
    raises(lambda: m.backfill_windows(date(2026, 1, 2), date(2026, 1, 2), 7), m.AirflowFailException)


FAKE = """#!{python}
# Stands in for maribank-etl: records its arguments, prints a few lines, exits with $FAKE_EXIT.
import json, os, sys
with open(os.environ["FAKE_ARGV"], "w") as f:
    json.dump(sys.argv[1:], f)
print('["ACC-SG-0001"]')
for i in range(30):
    print(f"stderr line {{i}}", file=sys.stderr)
sys.exit(int(os.environ["FAKE_EXIT"]))
"""


def check_exit_codes(m, tmp: Path) -> None:
    fake = tmp / "maribank-etl"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    os.environ["FAKE_ARGV"] = str(tmp / "argv.json")

    # Discovery: PATH, then the environment variable; a bad path is a permanent failure.
    os.environ.pop(m.BIN_SETTING, None)
    os.environ["PATH"] = f"{tmp}{os.pathsep}{os.environ['PATH']}"
    check("found on PATH", m.find_binary() == str(fake))
    os.environ[m.BIN_SETTING] = str(tmp / "missing")
    raises(m.find_binary, m.AirflowFailException)
    os.environ[m.BIN_SETTING] = str(fake)
    check("set by MARIBANK_ETL_BIN", m.find_binary() == str(fake))

    def run(code: int, argv: list[str]) -> Exception | str:
        os.environ["FAKE_EXIT"] = str(code)
        try:
            return m.run_etl(argv)
        except Exception as e:  # noqa: BLE001
            return e

    check("0 returns stdout", run(0, m.accounts_argv()) == '["ACC-SG-0001"]\n')
    for code in (2, 3, 5):
        e = run(code, ["sync"])
        check(f"{code}: failed without retry", isinstance(e, m.AirflowFailException), repr(e))
        check(f"{code}: the stderr tail in the message", "stderr line 29" in str(e) and "stderr line 9" not in str(e), str(e))
    for code in (4, 1, 101):
        e = run(code, ["sync"])
        check(f"{code}: retried", isinstance(e, m.AirflowException) and not isinstance(e, m.AirflowFailException), repr(e))
        check(f"{code}: the stderr tail in the message", "stderr line 29" in str(e), str(e))

    # A hostile id reaches the binary as one argument, and nothing runs it.
    pwned = tmp / "pwned"
    hostile = f"ACC X $(touch {pwned}) `touch {pwned}`; touch {pwned}"
    s, e = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    check("hostile id: success", run(0, m.sync_argv("p.toml", hostile, s, e)) == '["ACC-SG-0001"]\n')
    got = json.loads((tmp / "argv.json").read_text())
    check("hostile id: one argument", got[-1] == f"--accounts={hostile}" and len(got) == 8, got)
    check("hostile id: nothing ran", not pwned.exists())


def check_portal_export(m, dag_bag_task) -> None:
    """The portal-export folder comes from the Variable or the environment; without either the task
    logs it and is skipped before it looks at anything else."""
    os.environ.pop(m.PORTAL_EXPORTS_SETTING, None)
    check("no portal folder configured", m.portal_exports_folder() is None)
    e = raises(dag_bag_task.python_callable, m.AirflowSkipException)
    check("skipped, saying why", m.PORTAL_EXPORTS_SETTING in str(e), str(e))
    os.environ[m.PORTAL_EXPORTS_SETTING] = "/data/portal exports $(x)"
    check("folder from the environment", m.portal_exports_folder() == "/data/portal exports $(x)")
    argv = m.portal_export_argv("./wh", date(2026, 11, 23), date(2026, 11, 24), m.portal_exports_folder())
    check("the folder is one argument", argv[-2:] == ["--portal-export", "/data/portal exports $(x)"], argv)
    os.environ.pop(m.PORTAL_EXPORTS_SETTING)


def main() -> int:
    sys.path.insert(0, str(FOLDER))
    check_shape()
    import maribank_daily as m  # the DAG file as a module

    check_commands(m)
    from airflow.models import DagBag

    daily = DagBag(dag_folder=str(FOLDER)).dags["maribank_daily"]
    check_portal_export(m, daily.get_task("portal_export"))
    with tempfile.TemporaryDirectory() as tmp:
        check_exit_codes(m, Path(tmp))
    print(f"airflow DAG check: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
