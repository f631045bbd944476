"""Nightly MariBank sync: one mapped task per account for each data interval.

Each run pulls the interval [data_interval_start, data_interval_end) for every ACTIVE account,
fanned out over workers with dynamic task mapping, so a merchant with many stores spreads over the
pool. `catchup=True` turns a start_date in the past into a backfill, one interval per run; for years
of history prefer `maribank-etl backfill` (checkpointed, resumable) in a one-off task.

The commands are exactly the ones the README documents (a test renders and compares them).
Configure on the workers: the `maribank-etl` binary on PATH, MARIBANK_BASE_URL,
MARIBANK_ACCESS_KEY_ID and MARIBANK_SECRET_ACCESS_KEY (or _FILE) in the environment (a secrets
backend or the worker's env), and MARIBANK_PIPELINE pointing at the pipeline TOML.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

try:  # Airflow 3
    from airflow.sdk import DAG, task
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.decorators import task
    from airflow.operators.bash import BashOperator

PIPELINE = os.environ.get("MARIBANK_PIPELINE", "pipelines/daily.toml")

# The per-account sync of one data interval (README: "Running under Airflow"); ACCOUNT_ID is
# replaced by each mapped task's account.
SYNC_COMMAND = (
    "maribank-etl sync --config " + PIPELINE
    + " --start {{ data_interval_start.isoformat() }}"
    " --end {{ data_interval_end.isoformat() }}"
    " --accounts ACCOUNT_ID"
)
# After the interval's syncs, one incremental pass (per-account cursors on updated_at) picks up
# what the API published late and the status changes since: settlement of the day's payments.
INCREMENTAL_COMMAND = (
    "maribank-etl sync --config " + PIPELINE
    + " --incremental --start {{ data_interval_start.isoformat() }}"
)
# The account list the sync fans out over.
ACCOUNTS_COMMAND = ["maribank-etl", "accounts", "--status", "ACTIVE", "--format", "json"]


def sync_commands(accounts: list[str]) -> list[str]:
    """One sync command per account."""
    return [SYNC_COMMAND.replace("ACCOUNT_ID", a) for a in accounts]


with DAG(
    dag_id="maribank_daily",
    description="MariBank ledger, settlements, statements and fx rates into the warehouse",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=True,
    max_active_runs=4,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    },
    tags=["maribank", "finance"],
) as dag:

    @task(retries=3)
    def active_accounts() -> list[str]:
        """The sync command of every ACTIVE account."""
        out = subprocess.run(ACCOUNTS_COMMAND, check=True, capture_output=True, text=True)
        return sync_commands(json.loads(out.stdout))

    sync = BashOperator.partial(task_id="sync", append_env=True).expand(
        bash_command=active_accounts()
    )
    catch_up = BashOperator(task_id="catch_up", bash_command=INCREMENTAL_COMMAND, append_env=True)
    sync >> catch_up
