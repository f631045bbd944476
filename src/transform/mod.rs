//! The transform stage: API pages and statement files into typed Arrow record batches, with quarantine.
//!
//! Items arrive as raw JSON text (what extract received, one item per `&str`); each stream's
//! decoder ([`streams`]) validates an item against the contract and appends it to typed column
//! builders, or sends it to the `quarantine` table with a [`Reason`]. Money is parsed from its
//! decimal text into `Decimal128(18, 4)` ([`crate::contract::money`]), instants into UTC microseconds
//! ([`time`]). Statement CSV files go through [`statements`]. [`dedupe`] keeps the latest
//! version of every primary key; [`schema`] is the warehouse contract in Arrow terms.

pub mod json;
pub mod quarantine;
pub mod statements;
pub mod streams;

use std::collections::HashMap;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};

use crate::contract::table::TableDef;
use crate::load::profile::{self, Stage};
pub use quarantine::{QuarantineCounts, Reason, Reject};
pub use statements::{StatementError, StatementFile, decode_statement};
use streams::RowDecoder;

/// Where rows came from: the run and the extraction instant (the lineage columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// `_run_id`.
    pub run_id: String,
    /// `_extracted_at`, UTC microseconds.
    pub extracted_at_us: i64,
}

impl Lineage {
    /// Lineage of a run.
    pub fn new(run_id: impl Into<String>, extracted_at: DateTime<Utc>) -> Lineage {
        Lineage {
            run_id: run_id.into(),
            extracted_at_us: extracted_at.timestamp_micros(),
        }
    }
}

/// What decoding produced: the table's rows, the quarantined records, and counts per reason.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Rows of the stream's table.
    pub rows: RecordBatch,
    /// Rows of the `quarantine` table.
    pub quarantine: RecordBatch,
    /// Quarantined records per reason.
    pub counts: QuarantineCounts,
}

/// Decodes the JSON items of one stream, page after page, into batches of its table.
pub struct Transformer {
    stream: &'static str,
    lineage: Lineage,
    decoder: Box<dyn RowDecoder>,
    quarantine: quarantine::QuarantineBuilder,
    /// A field whose string values are counted among refused items.
    group_rejects_by: Option<&'static str>,
    rejected_groups: HashMap<String, u64>,
    /// The account every item must belong to (the one requested).
    expect_account: Option<String>,
    /// The field and the window `[start, end)` (UTC µs) every item's time must lie in.
    expect_window: Option<(&'static str, i64, i64)>,
}

impl Transformer {
    /// A transformer of the JSON items of the stream `stream` (its name, which quarantined
    /// records carry) decoded by `decoder`. The registry's `Stream::transformer` picks both.
    pub fn new(
        stream: &'static str,
        decoder: Box<dyn RowDecoder>,
        lineage: Lineage,
    ) -> Transformer {
        Transformer {
            stream,
            quarantine: quarantine::QuarantineBuilder::new(stream, lineage.clone()),
            lineage,
            decoder,
            group_rejects_by: None,
            rejected_groups: HashMap::new(),
            expect_account: None,
            expect_window: None,
        }
    }

    /// Decodes local-day columns in the account's zone (`transactions.business_date`).
    pub fn zone(mut self, tz: chrono_tz::Tz) -> Transformer {
        self.decoder.set_zone(tz);
        self
    }

    /// Quarantines items whose `account_id` is not `account` (`account_mismatch`): a record of
    /// another account must never replace that account's partitions.
    pub fn expect_account(mut self, account: impl Into<String>) -> Transformer {
        self.expect_account = Some(account.into());
        self
    }

    /// Quarantines items whose `field` lies outside `[start_us, end_us)` (`outside_window`): the
    /// API promised only items of the window asked for.
    pub fn expect_window(mut self, field: &'static str, start_us: i64, end_us: i64) -> Transformer {
        self.expect_window = Some((field, start_us, end_us));
        self
    }

    /// What the request promised of the item, checked before it is decoded.
    fn check_expected(&self, fields: &json::Fields<'_>) -> Result<(), Reject> {
        let text = |name: &str| {
            fields
                .0
                .iter()
                .find(|(k, _)| k.0 == name)
                .and_then(|(_, v)| match json::as_str(*v) {
                    json::JsonStr::Str(s) => Some(s),
                    _ => None,
                })
        };
        if let Some(want) = &self.expect_account
            && let Some(got) = text("account_id")
            && got != want.as_str()
        {
            return Err(Reject::new(
                Reason::AccountMismatch,
                format!("account_id `{got}` is not the account requested, `{want}`"),
            ));
        }
        if let Some((field, start, end)) = self.expect_window
            && let Some(got) = text(field)
            && let Some(us) = crate::contract::time::parse_instant_us(&got)
            // An impossible instant is the decoder's to name (`instant_out_of_range`).
            && (streams::MIN_INSTANT_US..streams::END_INSTANT_US).contains(&us)
            && !(start..end).contains(&us)
        {
            return Err(Reject::new(
                Reason::OutsideWindow,
                format!("{field} `{got}` lies outside the window requested"),
            ));
        }
        Ok(())
    }

    /// Counts refused items by the string value of `field` (e.g. the settlement batch id of
    /// quarantined transactions, which control totals name), read from the fields already
    /// parsed.
    pub fn group_rejects_by(mut self, field: &'static str) -> Transformer {
        self.group_rejects_by = Some(field);
        self
    }

    /// Refused items per value of the `group_rejects_by` field.
    pub fn rejected_groups(&self) -> &HashMap<String, u64> {
        &self.rejected_groups
    }

    /// The stream's name.
    pub fn stream(&self) -> &'static str {
        self.stream
    }

    /// The table its rows go to.
    pub fn table(&self) -> &'static TableDef {
        self.decoder.table()
    }

    /// Decodes one item (its raw JSON text); a contract-breaking one is quarantined.
    /// Returns whether the item was accepted.
    pub fn push_item(&mut self, raw: &str) -> bool {
        let t = profile::start();
        let fields = match streams::fields(raw) {
            Ok(f) => f,
            Err(rej) => {
                self.quarantine.push(raw, &rej);
                return false;
            }
        };
        profile::since(Stage::Parse, t);
        let t = profile::start();
        let pushed = self
            .check_expected(&fields)
            .and_then(|()| self.decoder.push(&fields, &self.lineage));
        profile::since(Stage::Decode, t);
        match pushed {
            Ok(()) => true,
            Err(rej) => {
                if let Some(name) = self.group_rejects_by
                    && let Some((_, v)) = fields.0.iter().find(|(k, _)| k.0 == name)
                    && let json::JsonStr::Str(s) = json::as_str(*v)
                {
                    *self.rejected_groups.entry(s.into_owned()).or_default() += 1;
                }
                self.quarantine.push(raw, &rej);
                false
            }
        }
    }

    /// Decodes a page of items.
    pub fn push_page<'a>(&mut self, items: impl IntoIterator<Item = &'a str>) {
        for it in items {
            self.push_item(it);
        }
    }

    /// Rows decoded and not yet taken.
    pub fn pending_rows(&self) -> usize {
        self.decoder.len()
    }

    /// Quarantined records not yet taken.
    pub fn pending_quarantine(&self) -> usize {
        self.quarantine.len()
    }

    /// The decoded rows so far (possibly empty); the transformer starts a new batch.
    pub fn take_rows(&mut self) -> RecordBatch {
        profile::timed(Stage::Decode, || self.decoder.finish())
    }

    /// The quarantined records so far (possibly empty).
    pub fn take_quarantine(&mut self) -> RecordBatch {
        self.quarantine.finish()
    }

    /// Quarantined records per reason since the transformer was made.
    pub fn counts(&self) -> &QuarantineCounts {
        self.quarantine.counts()
    }

    /// Everything pending, as one [`Decoded`].
    pub fn finish(&mut self) -> Decoded {
        Decoded {
            rows: self.take_rows(),
            quarantine: self.take_quarantine(),
            counts: self.counts().clone(),
        }
    }
}
