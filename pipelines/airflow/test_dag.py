"""Checks the DAG with a real Airflow install: it parses, it is scheduled as documented, and the
command lines its tasks run are the ones the README documents (rendered for one interval).

Run: AIRFLOW_HOME=$(mktemp -d) python pipelines/airflow/test_dag.py   (from the repository root)
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from airflow.models import DagBag

ROOT = Path(__file__).resolve().parents[2]


def readme_block(marker: str) -> str:
    """The fenced code block that follows `<!-- marker -->` in the README."""
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, f"README has no block marked {marker}"
    return m.group(1).strip()


def main() -> int:
    bag = DagBag(dag_folder=str(ROOT / "pipelines" / "airflow"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["maribank_daily"]
    assert dag.catchup is True, "catchup turns a past start_date into a backfill"
    assert {t.task_id for t in dag.tasks} == {"active_accounts", "sync", "catch_up"}
    sync = dag.get_task("sync")
    assert sync.retries == 3, sync.retries
    assert "active_accounts" in sync.upstream_task_ids

    import maribank_daily as mod  # the DAG file, importable once the bag put its folder on sys.path

    # The accounts task runs the documented listing command.
    assert " ".join(mod.ACCOUNTS_COMMAND) == readme_block("airflow-accounts-command"), mod.ACCOUNTS_COMMAND
    # Each mapped sync task runs the documented command for its account and interval.
    start = datetime(2026, 11, 24, tzinfo=timezone.utc)
    end = datetime(2026, 11, 25, tzinfo=timezone.utc)
    [command] = mod.sync_commands(["ACC-SG-0001"])
    rendered = jinja2.Template(command).render(data_interval_start=start, data_interval_end=end)
    documented = readme_block("airflow-sync-command")
    assert rendered == documented, f"\nDAG:    {rendered}\nREADME: {documented}"
    catch_up = dag.get_task("catch_up")
    assert "sync" in catch_up.upstream_task_ids
    rendered = jinja2.Template(mod.INCREMENTAL_COMMAND).render(data_interval_start=start, data_interval_end=end)
    documented = readme_block("airflow-incremental-command")
    assert rendered == documented, f"\nDAG:    {rendered}\nREADME: {documented}"
    print("airflow DAG check: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "pipelines" / "airflow"))
    sys.exit(main())
