//! Owns reading and writing `order_status` partitions of one account: finding the rows of
//! given orders (searching the partitions around their days), reading partitions whole, and
//! writing back the ones that changed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::Date32Type;
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
        let Some(path) = self.parts.get(&day) else {
            return Ok(vec![]);
        };
        let Some(batches) = read_columns(self.dest, &ORDER_STATUS, path, &[]).await? else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for b in &batches {
            out.extend(read_status(b)?);
        }
        Ok(out)
    }

    /// The rows of the partition of `day` split in two: those of the orders `mine` picks, as
    /// rows, and the others as Arrow batches, to be written back as they are
    /// ([`AccountStatus::write_days`]) without being decoded.
    pub async fn read_day_split(
        &self,
        day: i32,
        mine: impl Fn(&str) -> bool,
    ) -> Result<(Vec<StatusRow>, Vec<RecordBatch>), OrdersError> {
        let Some(path) = self.parts.get(&day) else {
            return Ok((vec![], vec![]));
        };
        let Some(batches) = read_columns(self.dest, &ORDER_STATUS, path, &[]).await? else {
            return Ok((vec![], vec![]));
        };
        let (mut rows, mut others) = (Vec::new(), Vec::new());
        for b in &batches {
            let ids = b
                .column_by_name("external_order_id")
                .ok_or_else(|| OrdersError::Corrupt(format!("{path}: no external_order_id")))?
                .as_string::<i32>();
            let picked: BooleanArray = ids.iter().map(|id| Some(id.is_some_and(&mine))).collect();
            if picked.true_count() > 0 {
                rows.extend(read_status(
                    &filter_record_batch(b, &picked).map_err(LoadError::from)?,
                )?);
            }
            if picked.false_count() > 0 {
                let rest = not(&picked).and_then(|m| filter_record_batch(b, &m));
                others.push(rest.map_err(LoadError::from)?);
            }
        }
        Ok((rows, others))
    }

    /// Writes `rows` (each into its `business_date`'s partition) and `kept`, rows read back
    /// untouched (each stays in its partition). `read` are the partitions the caller read
    /// whole: they become exactly the rows given (a day left without rows loses its file). A
    /// row landing in a partition the caller did not read is added to it: that partition's
    /// other orders are read back and kept (only an older row of the same order is dropped),
    /// so no order's row is ever lost by being written next to it. Every row written carries
    /// `lineage`. Returns the rows written.
    pub async fn write_days(
        &mut self,
        read: &BTreeSet<i32>,
        mut rows: Vec<StatusRow>,
        mut kept: Vec<RecordBatch>,
        lineage: &Lineage,
    ) -> Result<u64, OrdersError> {
        let day_of = |b: &RecordBatch| -> Result<Option<i32>, OrdersError> {
            let days = b
                .column_by_name("business_date")
                .ok_or_else(|| OrdersError::Corrupt("kept rows without business_date".into()))?
                .as_primitive::<Date32Type>();
            Ok(days.iter().flatten().next())
        };
        let mut filled: BTreeSet<i32> = rows.iter().map(|r| r.business_date).collect();
        let unread: Vec<i32> = filled
            .difference(read)
            .filter(|d| self.parts.contains_key(d))
            .copied()
            .collect();
        if !unread.is_empty() {
            let ids: HashSet<&str> = rows.iter().map(|r| r.external_order_id.as_str()).collect();
            for d in unread {
                let (_, others) = self.read_day_split(d, |id| ids.contains(id)).await?;
                kept.extend(others);
            }
        }
        // Each kept batch is of one partition (read day by day).
        let mut kept_by_day: BTreeMap<i32, Vec<RecordBatch>> = BTreeMap::new();
        for b in kept {
            if let Some(d) = day_of(&b)? {
                kept_by_day.entry(d).or_default().push(b);
            }
        }
        filled.extend(kept_by_day.keys());
        let mut writer = TableWriter::new(
            self.dest,
            &ORDER_STATUS,
            WriteMode::Replace,
            WriterConfig::default(),
        );
        // Partition by partition: each is given together and is spilled, if at all, as one run
        // that is already its file (rows interleaved across days would spill every partition
        // many times and merge the runs again).
        rows.sort_by_key(|r| r.business_date);
        let mut rest = rows.as_slice();
        for d in &filled {
            let n = rest.partition_point(|r| r.business_date == *d);
            for chunk in rest[..n].chunks(8192) {
                writer.write(&status_batch(chunk, lineage)?)?;
            }
            rest = &rest[n..];
            for b in kept_by_day.remove(d).unwrap_or_default() {
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
        s.write_days(&BTreeSet::new(), rows, vec![], &lineage)
            .await
            .unwrap();
        // O4 lands in d1 unread; O3 (read from d2) moves to d1 too: d1 keeps O1 and O2, d2
        // loses its file.
        let mut s = AccountStatus::open(&dest, "A").await.unwrap();
        let mut o3 = s.read_day(d2).await.unwrap().pop().unwrap();
        o3.business_date = d1;
        let read = BTreeSet::from([d2]);
        let n = s
            .write_days(&read, vec![empty_row("A", "O4", d1), o3], vec![], &lineage)
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
        s.write_days(&BTreeSet::new(), vec![o1], vec![], &lineage)
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
