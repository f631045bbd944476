//! `GET /v1/accounts` items into `accounts` rows (§7).

use arrow::datatypes::DataType;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};

use super::{RowDecoder, Slots, Tail, check_currency, pk_str, req_instant, req_str};
use crate::contract::table::{TableDef, col, instant, string_list};
use crate::transform::Lineage;
use crate::transform::json::{Fields, JsonStr, as_str, extra_json};
use crate::transform::quarantine::{Reason, Reject};

/// `accounts`: the account list.
pub static ACCOUNTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "accounts",
        vec![
            col("account_id", DataType::Utf8, false),
            col("account_name", DataType::Utf8, true),
            col("status", DataType::Utf8, false),
            col("timezone", DataType::Utf8, false),
            col("currencies", string_list(), true),
            col("created_at", instant(), false),
            col("_extra", DataType::Utf8, true),
        ],
        &[],
        &["account_id"],
        None,
    )
    .hints(&[], &["account_id", "status"])
});

const NAMES: [&str; 6] = [
    "account_id",
    "account_name",
    "status",
    "timezone",
    "currencies",
    "created_at",
];

/// Column builders of the `accounts` table.
pub struct AccountsDecoder {
    id: StringBuilder,
    name: StringBuilder,
    status: StringBuilder,
    timezone: StringBuilder,
    currencies: ListBuilder<StringBuilder>,
    created: TimestampMicrosecondBuilder,
    tail: Tail,
}

impl Default for AccountsDecoder {
    fn default() -> Self {
        AccountsDecoder {
            id: StringBuilder::new(),
            name: StringBuilder::new(),
            status: StringBuilder::new(),
            timezone: StringBuilder::new(),
            currencies: ListBuilder::new(StringBuilder::new()),
            created: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            tail: Tail::default(),
        }
    }
}

impl RowDecoder for AccountsDecoder {
    fn table(&self) -> &'static TableDef {
        &ACCOUNTS
    }

    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject> {
        let s = Slots::new(fields, &NAMES);
        let k = &s.known;
        let id = pk_str(k[0], NAMES[0])?;
        let name = super::opt_str(k[1], NAMES[1])?;
        let status = req_str(k[2], NAMES[2])?;
        let tz = req_str(k[3], NAMES[3])?;
        let currencies: Option<Vec<String>> = match k[4] {
            None => None,
            Some(v) if v.get() == "null" => None,
            Some(v) => {
                let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(v.get())
                    .map_err(|_| {
                        Reject::new(Reason::MalformedRecord, "currencies is not an array")
                    })?;
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    match as_str(it) {
                        JsonStr::Str(c) => {
                            out.push(check_currency(c, "currencies[]")?.0.into_owned())
                        }
                        _ => {
                            return Err(Reject::new(
                                Reason::UnknownCurrency,
                                "currencies[] is not a string",
                            ));
                        }
                    }
                }
                Some(out)
            }
        };
        let created = req_instant(k[5], NAMES[5])?;

        self.id.append_value(&id);
        self.name.append_option(name);
        self.status.append_value(&status);
        self.timezone.append_value(&tz);
        match currencies {
            Some(cs) => {
                for c in cs {
                    self.currencies.values().append_value(c);
                }
                self.currencies.append(true);
            }
            None => self.currencies.append(false),
        }
        self.created.append_value(created);
        self.tail.push(extra_json(&s.extra), lineage);
        Ok(())
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.timezone.finish()),
            Arc::new(self.currencies.finish()),
            Arc::new(self.created.finish()),
        ];
        self.tail.finish(&ACCOUNTS, cols)
    }
}
