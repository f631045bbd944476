//! Owns reading and writing `order_status` partitions of one account: finding the rows of
//! given orders (searching the partitions around their days), reading partitions whole, and
//! writing back the ones that changed.

use std::collections::{BTreeMap, BTreeSet};

use object_store::path::Path;

use super::OrdersError;
use super::rows::{StatusRow, read_status, status_batch};
use super::table::ORDER_STATUS;
use crate::contract::business_day::day_number;
use crate::contract::paths::encode_segment;
use crate::load::partition::date_text;
use crate::load::reader::delete_file;
use crate::load::{
    Destination, PartitionKey, TableWriter, WriteMode, WriterConfig, list_partitions, read_columns,
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

    async fn ids(&self, day: i32) -> Result<Vec<String>, OrdersError> {
        let Some(path) = self.parts.get(&day) else {
            return Ok(vec![]);
        };
        let cols = ["external_order_id"];
        let Some(batches) = read_columns(self.dest, &ORDER_STATUS, path, &cols).await? else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for b in &batches {
            let a = arrow::array::AsArray::as_string::<i32>(b.column(0));
            out.extend(a.iter().flatten().map(str::to_string));
        }
        Ok(out)
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
        for d in near.iter().rev() {
            for id in self.ids(*d).await? {
                if wanted.contains_key(&id) {
                    found.entry(id).or_default().push(*d);
                }
            }
        }
        let mut far: BTreeSet<&String> = wanted
            .iter()
            .filter(|(id, w)| w.2 && !found.contains_key(*id))
            .map(|(id, _)| id)
            .collect();
        let older: Vec<i32> = self.parts.range(..lo - lookback).map(|(d, _)| *d).collect();
        for d in older.iter().rev() {
            if far.is_empty() {
                break;
            }
            for id in self.ids(*d).await? {
                if far.remove(&id) {
                    found.entry(id).or_default().push(*d);
                }
            }
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

    /// Replaces the partitions of `days` with `rows` (each row in its `business_date`); a day
    /// left without rows loses its file. Returns the rows written.
    pub async fn write_days(
        &mut self,
        days: &BTreeSet<i32>,
        rows: Vec<StatusRow>,
        lineage: &Lineage,
    ) -> Result<u64, OrdersError> {
        let mut writer = TableWriter::new(
            self.dest,
            &ORDER_STATUS,
            WriteMode::Replace,
            WriterConfig::default(),
        );
        let filled: BTreeSet<i32> = rows.iter().map(|r| r.business_date).collect();
        for chunk in rows.chunks(8192) {
            writer.write(&status_batch(chunk, lineage)?)?;
        }
        let summary = writer.finish().await?;
        for d in days.difference(&filled) {
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
