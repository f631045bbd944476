"""Reads every table of a warehouse with each reader's documented one-liner (README, "Reading
the warehouse") and prints, per table and reader, the row count, the sum of every money column
and the type the date partition columns came back as — one JSON object.

Usage: matrix.py ROOT [--s3 ENDPOINT] [--spark]
ROOT is a local folder or s3://bucket/prefix (moto on ENDPOINT, keys `testing`)."""

import decimal
import json
import os
import sys

root = sys.argv[1]
args = sys.argv[2:]
endpoint = args[args.index("--s3") + 1] if "--s3" in args else None
with_spark = "--spark" in args
TABLES = json.loads(os.environ["MB_TABLES"])  # {table: {"partition_by": [...], "money": [...]}}


def money_sums(rows_iter, money):
    out = {c: decimal.Decimal(0) for c in money}
    for row in rows_iter:
        for c in money:
            v = row.get(c)
            if v is not None:
                out[c] += decimal.Decimal(str(v))
    return {c: str(v.normalize() if v != 0 else decimal.Decimal(0)) for c, v in out.items()}


def summary(n, sums, dates):
    return {"rows": n, "sums": sums, "dates": dates}


def date_types(schema_types, partition_by):
    return {c: schema_types.get(c, "missing") for c in partition_by if c.endswith("date")}


# --- the one-liners --------------------------------------------------------------------------

def duckdb_read(table):
    import duckdb
    con = duckdb.connect()
    if endpoint:
        import duckdb_ext
        ext = os.path.join(list(duckdb_ext.__path__)[0], "extensions")
        con = duckdb.connect(config={"extension_directory": ext, "autoinstall_known_extensions": False})
        con.sql("LOAD httpfs")
        host = endpoint.split("://", 1)[1]
        con.sql(f"SET s3_endpoint='{host}'; SET s3_use_ssl=false; SET s3_url_style='path'; "
                "SET s3_access_key_id='testing'; SET s3_secret_access_key='testing'; SET s3_region='us-east-1'")
    return con.sql(f"SELECT * FROM read_parquet('{root}/{table}/**/*.parquet', hive_partitioning = true)").fetch_arrow_table()


def s3fs():
    from pyarrow import fs
    return fs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="testing",
                           secret_key="testing", region="us-east-1")


def strip(path):
    return path[len("s3://"):] if endpoint else path


def pyarrow_read_table(table):
    import pyarrow.parquet as pq
    if endpoint:
        return pq.read_table(strip(f"{root}/{table}"), filesystem=s3fs())
    return pq.read_table(f"{root}/{table}")


def pyarrow_dataset(table):
    import pyarrow.dataset as ds
    if endpoint:
        return ds.dataset(strip(f"{root}/{table}"), partitioning="hive", filesystem=s3fs()).to_table()
    return ds.dataset(f"{root}/{table}", partitioning="hive").to_table()


def pandas_read(table):
    import pandas as pd
    if endpoint:
        return pd.read_parquet(strip(f"{root}/{table}"), filesystem=s3fs())
    return pd.read_parquet(f"{root}/{table}")


def polars_read(table):
    import polars as pl
    opts = None
    if endpoint:
        opts = {"aws_endpoint_url": endpoint, "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing", "aws_region": "us-east-1", "aws_allow_http": "true"}
    return pl.read_parquet(f"{root}/{table}/**/*.parquet", hive_partitioning=True, storage_options=opts)


# --- summaries per reader kind ----------------------------------------------------------------

def from_arrow(t, meta):
    types = {f.name: str(f.type) for f in t.schema}
    return summary(t.num_rows, money_sums(t.to_pylist(), meta["money"]), date_types(types, meta["partition_by"]))


def from_pandas(df, meta):
    types = {c: str(df[c].dtype) for c in df.columns}
    return summary(len(df), money_sums(df.to_dict("records"), meta["money"]), date_types(types, meta["partition_by"]))


def from_polars(df, meta):
    types = {c: str(t) for c, t in df.schema.items()}
    return summary(df.height, money_sums(df.to_dicts(), meta["money"]), date_types(types, meta["partition_by"]))


readers = {
    "duckdb": lambda t, m: from_arrow(duckdb_read(t), m),
    "pyarrow.read_table": lambda t, m: from_arrow(pyarrow_read_table(t), m),
    "pyarrow.dataset": lambda t, m: from_arrow(pyarrow_dataset(t), m),
    "pandas": lambda t, m: from_pandas(pandas_read(t), m),
    "polars": lambda t, m: from_polars(polars_read(t), m),
}

if with_spark:
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").appName("readers")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

    def spark_read(table, meta):
        df = spark.read.parquet(f"{root}/{table}")  # the one-liner
        types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        rows = [r.asDict() for r in df.select(*meta["money"]).collect()] if meta["money"] else []
        return summary(df.count(), money_sums(rows, meta["money"]), date_types(types, meta["partition_by"]))

    readers["spark"] = spark_read

out = {}
for table, meta in TABLES.items():
    out[table] = {}
    for name, read in readers.items():
        try:
            out[table][name] = read(table, meta)
        except Exception as e:  # reported, and the Rust test fails on it
            out[table][name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
print(json.dumps(out, sort_keys=True))
