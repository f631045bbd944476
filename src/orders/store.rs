//! Owns reading and writing `order_status` partitions of one account: finding the rows of
//! given orders (searching the partitions around their days), reading partitions whole, and
//! writing back the ones that changed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
use object_store::path::Path;

use super::OrdersError;
use super::rows::{StatusRow, read_status, status_batch};
use super::table::ORDER_STATUS;
use crate::contract::business_day::day_number;
use crate::contract::paths::encode_segment;
use crate::load::partition::date_text;
use crate::load::reader::delete_file;
use crate::load::{
    Destination, LoadError, PartitionKey, TableWriter, WriteMode, WriterConfig, list_partitions,
    read_columns,
};
use crate::transform::Lineage;

/// One account's `order_status` partitions.
pub struct AccountStatus<'a> {
    dest: &'a Destination,
    account: String,
    /// Stored partitions by business day.
    parts: BTreeMap<i32, Path>,
}

/// What to look for: order id → (earliest, latest) day it is expected around, and whether
/// it must be searched for beyond that (no payment seen, so it may be old).
pub type Wanted = BTreeMap<String, (i32, i32, bool)>;

impl<'a> AccountStatus<'a> {
    /// Lists the account's partitions.
    pub async fn open(
        dest: &'a Destination,
        account: &str,
    ) -> Result<AccountStatus<'a>, OrdersError> {
        let under = format!("account_id={}", encode_segment(account));
        let mut parts = BTreeMap::new();
        for p in list_partitions(dest, &ORDER_STATUS, &[under.as_str()]).await? {
            if p.value("account_id") != Some(account) {
                continue;
            }
            if let Some(d) = p
                .value("business_date")
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            {
                parts.insert(day_number(d), p.path);
            }
        }
        Ok(AccountStatus {
            dest,
            account: account.to_string(),
            parts,
        })
    }

    /// Calls `seen` with each order id stored in the partition of `day` (read as one column,
    /// the ids borrowed from it).
    async fn each_id(&self, day: i32, mut seen: impl FnMut(&str)) -> Result<(), OrdersError> {
        let Some(path) = self.parts.get(&day) else {
            return Ok(());
        };
        let cols = ["external_order_id"];
        let Some(batches) = read_columns(self.dest, &ORDER_STATUS, path, &cols).await? else {
            return Ok(());
        };
        for b in &batches {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .for_each(&mut seen);
        }
        Ok(())
    }

    /// The days whose partitions hold each wanted order: the partitions within `lookback`
    /// days of its expected days first, then, for orders flagged to search further and not
    /// found yet, every older partition (newest first) until they are.
    pub async fn locate(
        &self,
        wanted: &Wanted,
        lookback: i32,
    ) -> Result<BTreeMap<String, Vec<i32>>, OrdersError> {
        let mut found: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        let (Some(lo), Some(hi)) = (
            wanted.values().map(|w| w.0).min(),
            wanted.values().map(|w| w.1).max(),
        ) else {
            return Ok(found);
        };
        let near: Vec<i32> = self
            .parts
            .range(lo - lookback..=hi + lookback)
            .map(|(d, _)| *d)
            .collect();
        let keys: HashSet<&str> = wanted.keys().map(String::as_str).collect();
        for d in near.iter().rev() {
            self.each_id(*d, |id| {
                if keys.contains(id) {
                    found.entry(id.to_string()).or_default().push(*d);
                }
            })
            .await?;
        }
        let mut far: HashSet<&str> = wanted
            .iter()
            .filter(|(id, w)| w.2 && !found.contains_key(*id))
            .map(|(id, _)| id.as_str())
            .collect();
        let older: Vec<i32> = self.parts.range(..lo - lookback).map(|(d, _)| *d).collect();
        for d in older.iter().rev() {
            if far.is_empty() {
                break;
            }
            self.each_id(*d, |id| {
                if far.remove(id) {
                    found.entry(id.to_string()).or_default().push(*d);
                }
            })
            .await?;
        }
        Ok(found)
    }

    /// Every row of the partition of `day` (none when it does not exist).
    pub async fn read_day(&self, day: i32) -> Result<Vec<StatusRow>, OrdersError> {
        self.picked_rows(day, |_| true).await
    }

    /// The rows of the orders `mine` picks in the partition of `day`.
    pub async fn picked_rows(
        &self,
        day: i32,
        mine: impl Fn(&str) -> bool,
    ) -> Result<Vec<StatusRow>, OrdersError> {
        let mut rows = Vec::new();
        for b in self.split_day(day, &mine, true).await? {
            rows.extend(read_status(&b)?);
        }
        Ok(rows)
    }

    /// The rows of the partition of `day` whose orders `mine` does not pick, as Arrow batches
    /// (written back as they are, never decoded into rows).
    async fn other_rows(
        &self,
        day: i32,
        mine: impl Fn(&str) -> bool,
    ) -> Result<Vec<RecordBatch>, OrdersError> {
        self.split_day(day, &mine, false).await
    }

    /// The batches of the partition of `day` filtered to the orders `mine` picks (`picked`)
    /// or to the others.
    async fn split_day(
        &self,
        day: i32,
        mine: &impl Fn(&str) -> bool,
        picked: bool,
    ) -> Result<Vec<RecordBatch>, OrdersError> {
        let Some(path) = self.parts.get(&day) else {
            return Ok(vec![]);
        };
        let Some(batches) = read_columns(self.dest, &ORDER_STATUS, path, &[]).await? else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for b in &batches {
            let ids = b
                .column_by_name("external_order_id")
                .ok_or_else(|| OrdersError::Corrupt(format!("{path}: no external_order_id")))?
                .as_string::<i32>();
            let mask: BooleanArray = ids
                .iter()
                .map(|id| Some(id.is_some_and(mine) == picked))
                .collect();
            match mask.true_count() {
                0 => {}
                n if n == b.num_rows() => out.push(b.clone()),
                _ => out.push(filter_record_batch(b, &mask).map_err(LoadError::from)?),
            }
        }
        Ok(out)
    }

    /// Writes `rows`, each into its `business_date`'s partition. Every partition written, and
    /// every one in `read` (those the caller read its orders from), is rewritten as its stored
    /// rows of other orders (read back now, one partition at a time, passed through as Arrow)
    /// plus the rows given; a partition left without rows loses its file. So no order's row is
    /// ever lost by being written next to it, and an order whose row moves to another day
    /// leaves its old one. Every row written carries `lineage`. Returns the rows written.
    pub async fn write_days(
        &mut self,
        read: &BTreeSet<i32>,
        mut rows: Vec<StatusRow>,
        lineage: &Lineage,
    ) -> Result<u64, OrdersError> {
        let mut filled: BTreeSet<i32> = rows.iter().map(|r| r.business_date).collect();
        let ids: HashSet<String> = rows.iter().map(|r| r.external_order_id.clone()).collect();
        let days: BTreeSet<i32> = read.union(&filled).copied().collect();
        let mut writer = TableWriter::new(
            self.dest,
            &ORDER_STATUS,
            WriteMode::Replace,
            WriterConfig::default(),
        );
        // Partition by partition: each is given together and is spilled, if at all, as one run
        // that is already its file, and only one partition's stored rows are held at a time.
        rows.sort_by_key(|r| r.business_date);
        let mut rest = rows.as_slice();
        for d in &days {
            let n = rest.partition_point(|r| r.business_date == *d);
            for chunk in rest[..n].chunks(8192) {
                writer.write(&status_batch(chunk, lineage)?)?;
            }
            rest = &rest[n..];
            for b in self.other_rows(*d, |id| ids.contains(id)).await? {
                filled.insert(*d);
                writer.write(&restamp(b, lineage)?)?;
            }
        }
        drop(rows);
        let summary = writer.finish().await?;
        for d in read.difference(&filled) {
            if let Some(p) = self.parts.remove(d) {
                delete_file(self.dest, &p).await?;
            }
        }
        for d in &filled {
            let key = PartitionKey(vec![
                format!("account_id={}", encode_segment(&self.account)),
                format!("business_date={}", date_text(*d)),
            ]);
            self.parts.insert(
                *d,
                TableWriter::partition_path(self.dest, &ORDER_STATUS, &key),
            );
        }
        Ok(summary.rows_written)
    }
}

/// `batch` with the lineage columns of `lineage` (a partition rewritten carries the run that
/// wrote it on every row, untouched ones included).
fn restamp(batch: RecordBatch, lineage: &Lineage) -> Result<RecordBatch, OrdersError> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut cols = batch.columns().to_vec();
    for (i, f) in schema.fields().iter().enumerate() {
        match f.name().as_str() {
            "_run_id" => cols[i] = Arc::new(StringArray::from(vec![lineage.run_id.as_str(); n])),
            "_extracted_at" => {
                cols[i] = Arc::new(
                    TimestampMicrosecondArray::from(vec![lineage.extracted_at_us; n])
                        .with_timezone("UTC"),
                )
            }
            _ => {}
        }
    }
    Ok(RecordBatch::try_new(schema, cols).map_err(LoadError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::keep::empty_row;

    fn ids(rows: &[StatusRow]) -> Vec<&str> {
        let mut v: Vec<&str> = rows.iter().map(|r| r.external_order_id.as_str()).collect();
        v.sort_unstable();
        v
    }

    #[tokio::test]
    async fn a_row_written_into_a_partition_not_read_keeps_its_other_orders() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::local(dir.path()).unwrap();
        let lineage = Lineage::new("t", chrono::DateTime::from_timestamp(0, 0).unwrap());
        let (d1, d2) = (20518, 20519);
        let mut s = AccountStatus::open(&dest, "A").await.unwrap();
        let rows = vec![
            empty_row("A", "O1", d1),
            empty_row("A", "O2", d1),
            empty_row("A", "O3", d2),
        ];
        s.write_days(&BTreeSet::new(), rows, &lineage)
            .await
            .unwrap();
        // O4 lands in d1 unread; O3 (read from d2) moves to d1 too: d1 keeps O1 and O2, d2
        // loses its file.
        let mut s = AccountStatus::open(&dest, "A").await.unwrap();
        let mut o3 = s.read_day(d2).await.unwrap().pop().unwrap();
        o3.business_date = d1;
        let read = BTreeSet::from([d2]);
        let n = s
            .write_days(&read, vec![empty_row("A", "O4", d1), o3], &lineage)
            .await
            .unwrap();
        assert_eq!(n, 4);
        let s = AccountStatus::open(&dest, "A").await.unwrap();
        assert_eq!(
            ids(&s.read_day(d1).await.unwrap()),
            ["O1", "O2", "O3", "O4"]
        );
        assert!(s.read_day(d2).await.unwrap().is_empty());
        assert!(!s.parts.contains_key(&d2));
        // A newer row of an order stored in a partition not read replaces it there.
        let mut s = s;
        let mut o1 = empty_row("A", "O1", d1);
        o1.version = 2;
        s.write_days(&BTreeSet::new(), vec![o1], &lineage)
            .await
            .unwrap();
        let s = AccountStatus::open(&dest, "A").await.unwrap();
        let rows = s.read_day(d1).await.unwrap();
        assert_eq!(ids(&rows), ["O1", "O2", "O3", "O4"]);
        assert_eq!(
            rows.iter()
                .find(|r| r.external_order_id == "O1")
                .unwrap()
                .version,
            2
        );
    }
}
