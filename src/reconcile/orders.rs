//! The orders check: the seller's orders (CSV or Parquet) against the ledger's payments, refunds
//! and chargebacks, joined on (account, `external_order_id`) by hashing both sides into spill
//! buckets on local disk and joining one bucket at a time (bounded memory for any size).
//!
//! Per order of the window: matched (maybe with an explained amount difference: `fee`,
//! `partial_refund`, `fx_conversion` at the stored `fx_rate`), paid after the window
//! (`timing`), sold but not paid, or paid but unknown to the seller — and its payment status
//! (`paid`, `refunded`, `partially_refunded`, `disputed`, `missing`) in `order_status`.

use crate::contract::money::convert_units4;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use super::ledger::{Quarantined, local_day};
use super::stage::Staging;
use super::{
    Cell, Check, Difference, Findings, ReconcileConfig, ReconcileError, UNEXPLAINED, Zones,
    date_of, day_number, digits, fmt_amount,
};
use crate::contract::money::parse_decimal;
use crate::transform::statements::CsvRecords;

/// Orders per spill bucket (a bucket's orders and transactions take about 60 MB joined; two
/// buckets are joined at once).
const ORDERS_PER_BUCKET: u64 = 100_000;
/// CSV bytes per spill bucket (about as many orders).
const CSV_BYTES_PER_BUCKET: u64 = 8 * 1024 * 1024;
/// CSV read chunk.
const CHUNK: usize = 8 * 1024 * 1024;

/// Ledger transaction types the orders check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// `PAYMENT`.
    Payment,
    /// `REFUND`.
    Refund,
    /// `CHARGEBACK`.
    Chargeback,
}

impl TxnKind {
    /// The kind of a `type` value, if the check uses it.
    pub fn of(s: &str) -> Option<TxnKind> {
        match s {
            "PAYMENT" => Some(TxnKind::Payment),
            "REFUND" => Some(TxnKind::Refund),
            "CHARGEBACK" => Some(TxnKind::Chargeback),
            _ => None,
        }
    }
    fn code(self) -> u8 {
        match self {
            TxnKind::Payment => 0,
            TxnKind::Refund => 1,
            TxnKind::Chargeback => 2,
        }
    }
    fn from_code(c: u8) -> TxnKind {
        match c {
            0 => TxnKind::Payment,
            1 => TxnKind::Refund,
            _ => TxnKind::Chargeback,
        }
    }
}

/// One ledger transaction of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRec<'a> {
    /// Account.
    pub account: &'a str,
    /// `external_order_id`.
    pub order: &'a str,
    /// `transaction_id`.
    pub transaction_id: &'a str,
    /// Type.
    pub kind: TxnKind,
    /// Wallet currency.
    pub currency: &'a str,
    /// Gross (`Decimal128(18, 4)` units).
    pub gross: i128,
    /// Fee.
    pub fee: i128,
    /// Buyer's currency of a converted payment.
    pub original_currency: Option<&'a str>,
    /// Buyer's amount.
    pub original_amount: Option<i128>,
    /// Units of `currency` per one `original_currency`, scaled by 10^10.
    pub fx_rate: Option<i128>,
    /// `created_at`, UTC microseconds.
    pub created_us: i64,
    /// Account-local business day (`Date32`).
    pub local_day: i32,
    /// Channel.
    pub channel: Option<&'a str>,
}

/// One seller order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderRec<'a> {
    account: &'a str,
    order: &'a str,
    channel: Option<&'a str>,
    currency: &'a str,
    amount: i128,
    time_us: Option<i64>,
    /// Account-local day of the order time; `i32::MIN` when the order has no time.
    day: i32,
}

// ---- spill encoding ----

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}
fn put_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
        None => b.push(0),
    }
}
fn put_i128(b: &mut Vec<u8>, v: i128) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_opt_i128(b: &mut Vec<u8>, v: Option<i128>) {
    match v {
        Some(v) => {
            b.push(1);
            put_i128(b, v);
        }
        None => b.push(0),
    }
}
fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_le_bytes());
}

struct Dec<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Dec<'a> {
    fn done(&self) -> bool {
        self.p >= self.b.len()
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn str(&mut self) -> &'a str {
        let n = u32::from_le_bytes(self.take(4).try_into().expect("4 bytes")) as usize;
        std::str::from_utf8(self.take(n)).unwrap_or("")
    }
    fn opt_str(&mut self) -> Option<&'a str> {
        (self.u8() == 1).then(|| self.str())
    }
    fn i128(&mut self) -> i128 {
        i128::from_le_bytes(self.take(16).try_into().expect("16 bytes"))
    }
    fn opt_i128(&mut self) -> Option<i128> {
        (self.u8() == 1).then(|| self.i128())
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
}

fn encode_txn(b: &mut Vec<u8>, t: &TxnRec<'_>) {
    put_str(b, t.account);
    put_str(b, t.order);
    put_str(b, t.transaction_id);
    b.push(t.kind.code());
    put_str(b, t.currency);
    put_i128(b, t.gross);
    put_i128(b, t.fee);
    put_opt_str(b, t.original_currency);
    put_opt_i128(b, t.original_amount);
    put_opt_i128(b, t.fx_rate);
    put_i64(b, t.created_us);
    put_i64(b, i64::from(t.local_day));
    put_opt_str(b, t.channel);
}

fn decode_txn<'a>(d: &mut Dec<'a>) -> TxnRec<'a> {
    TxnRec {
        account: d.str(),
        order: d.str(),
        transaction_id: d.str(),
        kind: TxnKind::from_code(d.u8()),
        currency: d.str(),
        gross: d.i128(),
        fee: d.i128(),
        original_currency: d.opt_str(),
        original_amount: d.opt_i128(),
        fx_rate: d.opt_i128(),
        created_us: d.i64(),
        local_day: d.i64() as i32,
        channel: d.opt_str(),
    }
}

fn encode_order(b: &mut Vec<u8>, o: &OrderRec<'_>) {
    put_str(b, o.account);
    put_str(b, o.order);
    put_opt_str(b, o.channel);
    put_str(b, o.currency);
    put_i128(b, o.amount);
    match o.time_us {
        Some(t) => {
            b.push(1);
            put_i64(b, t);
        }
        None => b.push(0),
    }
    put_i64(b, i64::from(o.day));
}

fn decode_order<'a>(d: &mut Dec<'a>) -> OrderRec<'a> {
    OrderRec {
        account: d.str(),
        order: d.str(),
        channel: d.opt_str(),
        currency: d.str(),
        amount: d.i128(),
        time_us: (d.u8() == 1).then(|| d.i64()),
        day: d.i64() as i32,
    }
}

fn bucket_of(account: &str, order: &str, k: usize) -> usize {
    let mut h = DefaultHasher::new();
    account.hash(&mut h);
    order.hash(&mut h);
    (h.finish() % k as u64) as usize
}

/// FxHash (rustc's hasher): the join's keys are not attacker-chosen hash-flooding material
/// worth SipHash's cost — they are the merchant's own order ids.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fx>>;

/// One side's buckets.
struct Buckets {
    files: Vec<BufWriter<std::fs::File>>,
    paths: Vec<PathBuf>,
    buf: Vec<u8>,
}

impl Buckets {
    fn create(dir: &Path, side: &str, k: usize) -> Result<Buckets, ReconcileError> {
        let mut files = Vec::with_capacity(k);
        let mut paths = Vec::with_capacity(k);
        for i in 0..k {
            let p = dir.join(format!("{side}-{i}.bin"));
            let f = std::fs::File::create(&p).map_err(|e| spill_err(&p, e))?;
            files.push(BufWriter::with_capacity(256 * 1024, f));
            paths.push(p);
        }
        Ok(Buckets {
            files,
            paths,
            buf: Vec::with_capacity(256),
        })
    }

    fn write(&mut self, i: usize) -> Result<(), ReconcileError> {
        let r = self.files[i].write_all(&self.buf);
        self.buf.clear();
        r.map_err(|e| spill_err(&self.paths[i], e))
    }

    fn close(self) -> Result<Vec<PathBuf>, ReconcileError> {
        for (mut f, p) in self.files.into_iter().zip(&self.paths) {
            f.flush().map_err(|e| spill_err(p, e))?;
        }
        Ok(self.paths)
    }
}

fn spill_err(p: &Path, e: std::io::Error) -> ReconcileError {
    ReconcileError::Spill {
        path: p.display().to_string(),
        source: e,
    }
}

/// The orders side loaded into buckets, collecting the ledger side as the accounts are read.
pub struct OrderJoin {
    _dir: super::SpillDir,
    k: usize,
    orders: Vec<PathBuf>,
    txns: Buckets,
    /// Orders read from the file.
    pub orders_read: u64,
    /// Ledger transactions collected.
    pub txns_read: u64,
}

/// Where the orders file's columns are.
struct Layout {
    order: usize,
    amount: usize,
    currency: usize,
    account: Option<usize>,
    time: Option<usize>,
    channel: Option<usize>,
}

impl Layout {
    fn of(names: &[String], path: &str) -> Result<Layout, ReconcileError> {
        let find = |n: &str| names.iter().position(|c| c.trim().eq_ignore_ascii_case(n));
        let req = |n: &str| {
            find(n).ok_or_else(|| ReconcileError::Orders {
                path: path.to_string(),
                message: format!(
                    "no column `{n}` (need external_order_id, amount, currency; optional account_id, order_time, channel)"
                ),
            })
        };
        Ok(Layout {
            order: req("external_order_id")?,
            amount: req("amount")?,
            currency: req("currency")?,
            account: find("account_id"),
            time: find("order_time"),
            channel: find("channel"),
        })
    }
}

/// Parses an order time: RFC 3339, or `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DD` in the account's zone.
fn parse_time(s: &str, tz: Tz) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_micros())
}

impl OrderJoin {
    /// Reads the orders file into spill buckets.
    pub async fn load(
        path: &Path,
        cfg: &ReconcileConfig,
        zones: &Zones,
    ) -> Result<OrderJoin, ReconcileError> {
        let shown = path.display().to_string();
        let oerr = |m: String| ReconcileError::Orders {
            path: shown.clone(),
            message: m,
        };
        let meta = std::fs::metadata(path).map_err(|e| oerr(e.to_string()))?;
        let is_parquet = {
            let mut magic = [0u8; 4];
            let mut f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
            f.read_exact(&mut magic).is_ok() && &magic == b"PAR1"
        };
        let parquet_rows = if is_parquet {
            let f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| oerr(e.to_string()))?;
            Some(b.metadata().file_metadata().num_rows().max(0) as u64)
        } else {
            None
        };
        let k = match parquet_rows {
            Some(n) => n / ORDERS_PER_BUCKET + 1,
            None => meta.len() / CSV_BYTES_PER_BUCKET + 1,
        } as usize;
        let dir = super::SpillDir::create(cfg.spill_dir.as_deref(), "join")?;
        let mut ob = Buckets::create(&dir.0, "orders", k)?;
        let txns = Buckets::create(&dir.0, "txns", k)?;
        let mut n = 0u64;
        {
            let mut push = |fields: &[&str], line: u64, l: &Layout| -> Result<(), ReconcileError> {
                let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).map(|s| s.trim());
                let account = match get(l.account).filter(|s| !s.is_empty()) {
                    Some(a) => a,
                    None => cfg.orders_account.as_deref().ok_or_else(|| {
                        oerr(format!(
                            "row {line}: no account_id (add the column or pass --orders-account)"
                        ))
                    })?,
                };
                let order = get(Some(l.order)).unwrap_or("");
                if order.is_empty() {
                    return Err(oerr(format!("row {line}: empty external_order_id")));
                }
                let currency = get(Some(l.currency)).unwrap_or("").to_ascii_uppercase();
                let amount_text = get(Some(l.amount)).unwrap_or("");
                let amount = parse_decimal(amount_text, 18, 4, 4)
                    .map_err(|e| oerr(format!("row {line}: amount: {e}")))?;
                let tz = zones.get(account).copied().unwrap_or(Tz::UTC);
                let time_us = get(l.time).and_then(|t| parse_time(t, tz));
                if get(l.time).is_some_and(|t| !t.is_empty()) && time_us.is_none() {
                    return Err(oerr(format!(
                        "row {line}: order_time `{}` is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS",
                        get(l.time).unwrap_or("")
                    )));
                }
                let rec = OrderRec {
                    day: time_us.map_or(i32::MIN, |t| local_day(tz, t)),
                    channel: get(l.channel).filter(|s| !s.is_empty()),
                    account,
                    order,
                    currency: &currency,
                    amount,
                    time_us,
                };
                let i = bucket_of(rec.account, rec.order, k);
                encode_order(&mut ob.buf, &rec);
                ob.write(i)?;
                n += 1;
                Ok(())
            };
            if is_parquet {
                read_parquet(path, &shown, &mut push)?;
            } else {
                read_csv(path, &shown, &mut push)?;
            }
        }
        Ok(OrderJoin {
            _dir: dir,
            k,
            orders: ob.close()?,
            txns,
            orders_read: n,
            txns_read: 0,
        })
    }

    /// Adds one ledger transaction with an order id.
    pub fn push_txn(&mut self, t: &TxnRec<'_>) -> Result<(), ReconcileError> {
        let i = bucket_of(t.account, t.order, self.k);
        encode_txn(&mut self.txns.buf, t);
        self.txns_read += 1;
        self.txns.write(i)
    }

    /// Joins the buckets, two at a time on two threads, staging `recon_orders` and
    /// `order_status` rows by partition under `stage_dir`; returns the staged files of each.
    pub(crate) fn finish(
        self,
        cfg: &ReconcileConfig,
        quarantine: &Quarantined,
        findings: &mut Findings,
        stage_dir: &Path,
    ) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ReconcileError> {
        let window = (day_number(cfg.start), day_number(cfg.end));
        let txn_paths = self.txns.close()?;
        let groups = (self.orders_read / super::STAGE_ROWS_PER_GROUP + 1) as usize;
        let pairs: Vec<(&PathBuf, &PathBuf)> = self.orders.iter().zip(&txn_paths).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = JOIN_THREADS.min(pairs.len()).max(1);
        let results: Vec<Result<(Findings, Sink), ReconcileError>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (pairs, next) = (&pairs, &next);
                    sc.spawn(move || -> Result<(Findings, Sink), ReconcileError> {
                        let mut f = Findings::new(cfg.report_limit);
                        let mut sink = Sink {
                            orders: Staging::create(
                                stage_dir,
                                &format!("recon_orders-{w}"),
                                groups,
                            )?,
                            status: Staging::create(
                                stage_dir,
                                &format!("order_status-{w}"),
                                groups,
                            )?,
                        };
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((op, tp)) = pairs.get(i) else {
                                return Ok((f, sink));
                            };
                            join_bucket(op, tp, window, quarantine, &mut f, &mut sink)?;
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ReconcileError::Config(
                            "an orders join thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        let (mut orders, mut status) = (Vec::new(), Vec::new());
        for r in results {
            let (f, sink) = r?;
            findings.merge(f);
            orders.extend(sink.orders.close()?);
            status.extend(sink.status.close()?);
        }
        Ok((orders, status))
    }
}

/// Threads joining buckets.
const JOIN_THREADS: usize = 2;

/// Where one join thread stages its rows.
struct Sink {
    orders: Staging,
    status: Staging,
}

/// Joins one bucket: its orders and its transactions.
fn join_bucket(
    op: &Path,
    tp: &Path,
    window: (i32, i32),
    quarantine: &Quarantined,
    findings: &mut Findings,
    sink: &mut Sink,
) -> Result<(), ReconcileError> {
    let ob = std::fs::read(op).map_err(|e| spill_err(op, e))?;
    let _ = std::fs::remove_file(op);
    let mut orders: FxMap<(&str, &str), OrderRec<'_>> = FxMap::default();
    let mut dups: Vec<OrderRec> = Vec::new();
    let mut d = Dec { b: &ob, p: 0 };
    while !d.done() {
        let o = decode_order(&mut d);
        match orders.entry((o.account, o.order)) {
            std::collections::hash_map::Entry::Occupied(_) => dups.push(o),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(o);
            }
        }
    }
    let tb = std::fs::read(tp).map_err(|e| spill_err(tp, e))?;
    let _ = std::fs::remove_file(tp);
    let mut txns: FxMap<(&str, &str), Vec<TxnRec<'_>>> = FxMap::default();
    let mut d = Dec { b: &tb, p: 0 };
    while !d.done() {
        let t = decode_txn(&mut d);
        txns.entry((t.account, t.order)).or_default().push(t);
    }
    for o in dups {
        if o.day >= window.0 && o.day < window.1 {
            findings.note(Difference {
                check: Check::Orders,
                business_date: date_of(o.day),
                account_id: o.account.to_string(),
                currency: o.currency.to_string(),
                key: o.order.to_string(),
                result: "duplicate_order",
                classification: UNEXPLAINED,
                detail: "the order appears more than once in the seller's file".into(),
            });
        }
    }
    for (key, o) in &orders {
        let ts = txns.remove(key).unwrap_or_default();
        join_one(Some(o), ts, window, quarantine, findings, sink)?;
    }
    for (_, ts) in txns {
        join_one(None, ts, window, quarantine, findings, sink)?;
    }
    Ok(())
}

/// Receives one order row: its fields, its row number and the file's column layout.
type PushRow<'a> = dyn FnMut(&[&str], u64, &Layout) -> Result<(), ReconcileError> + 'a;

/// Reads a CSV orders file chunk by chunk (records never split across chunks).
fn read_csv(path: &Path, shown: &str, push: &mut PushRow<'_>) -> Result<(), ReconcileError> {
    let oerr = |m: String| ReconcileError::Orders {
        path: shown.to_string(),
        message: m,
    };
    let mut f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut layout: Option<Layout> = None;
    let mut line = 0u64;
    let mut first = true;
    let mut eof = false;
    while !eof {
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let got = f.read(&mut buf[old..]).map_err(|e| oerr(e.to_string()))?;
        buf.truncate(old + got);
        eof = got == 0;
        // Cut after the last line end outside quotes.
        let cut = if eof {
            buf.len()
        } else {
            let mut quoted = false;
            let mut last = None;
            for (i, &c) in buf.iter().enumerate() {
                if c == b'"' {
                    quoted = !quoted;
                } else if c == b'\n' && !quoted {
                    last = Some(i + 1);
                }
            }
            match last {
                Some(c) => c,
                None => continue,
            }
        };
        let mut start = 0;
        if first && buf.starts_with(b"\xEF\xBB\xBF") {
            start = 3;
        }
        first = false;
        let text =
            std::str::from_utf8(&buf[start..cut]).map_err(|e| oerr(format!("not UTF-8: {e}")))?;
        for rec in CsvRecords::new(text) {
            let rec = rec.map_err(&oerr)?;
            line += 1;
            if rec.len() == 1 && rec[0].trim().is_empty() {
                continue;
            }
            match &layout {
                None => {
                    let names: Vec<String> = rec.iter().map(|c| c.to_string()).collect();
                    layout = Some(Layout::of(&names, shown)?);
                }
                Some(l) => {
                    let fields: Vec<&str> = rec.iter().map(|c| c.as_ref()).collect();
                    push(&fields, line, l)?;
                }
            }
        }
        buf.drain(..cut);
    }
    if layout.is_none() {
        return Err(oerr("empty file (no header)".into()));
    }
    Ok(())
}

/// Reads a Parquet orders file batch by batch.
fn read_parquet(path: &Path, shown: &str, push: &mut PushRow<'_>) -> Result<(), ReconcileError> {
    let oerr = |m: String| ReconcileError::Orders {
        path: shown.to_string(),
        message: m,
    };
    let f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| oerr(e.to_string()))?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| oerr(e.to_string()))?;
    let mut line = 0u64;
    for b in reader {
        let b: RecordBatch = b.map_err(|e| oerr(e.to_string()))?;
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let l = Layout::of(&names, shown)?;
        // Every column as text; instants as RFC 3339.
        let texts: Vec<Vec<Option<String>>> = b
            .columns()
            .iter()
            .map(|c| -> Result<Vec<Option<String>>, ReconcileError> {
                if let DataType::Timestamp(_, _) = c.data_type() {
                    let t = cast(
                        c,
                        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    )
                    .map_err(|e| oerr(e.to_string()))?;
                    let t = t.as_primitive::<TimestampMicrosecondType>();
                    return Ok((0..t.len())
                        .map(|i| {
                            t.is_valid(i).then(|| {
                                chrono::DateTime::from_timestamp_micros(t.value(i))
                                    .map(|d| d.to_rfc3339())
                                    .unwrap_or_default()
                            })
                        })
                        .collect());
                }
                let s = cast(c, &DataType::Utf8).map_err(|e| oerr(e.to_string()))?;
                let s = s.as_string::<i32>();
                Ok((0..s.len())
                    .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
                    .collect())
            })
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            line += 1;
            let fields: Vec<&str> = texts
                .iter()
                .map(|c| c[i].as_deref().unwrap_or(""))
                .collect();
            push(&fields, line, &l)?;
        }
    }
    Ok(())
}

/// Compares an order with its payments: `None` when equal, else the classification, the
/// difference in the payment currency (expected − ledger) and a detail.
fn classify_amount(
    o: &OrderRec<'_>,
    pays: &[&TxnRec<'_>],
    refunded: i128,
) -> Option<(&'static str, Option<i128>, String)> {
    let p = pays[0];
    let c = p.currency;
    let gross: i128 = pays.iter().map(|t| t.gross).sum();
    let fee: i128 = pays.iter().map(|t| t.fee).sum();
    if o.currency == c {
        let diff = o.amount - gross;
        if diff == 0 {
            return None;
        }
        let detail = format!(
            "order {} {}, payment gross {} {c}",
            fmt_amount(o.amount, o.currency),
            o.currency,
            fmt_amount(gross, c)
        );
        if fee != 0 && o.amount == gross - fee {
            return Some((
                "fee",
                Some(diff),
                format!("{detail}: the order is net of the fee"),
            ));
        }
        if refunded != 0 && o.amount == gross + refunded {
            return Some((
                "partial_refund",
                Some(diff),
                format!("{detail}: the order is net of a partial refund"),
            ));
        }
        return Some((UNEXPLAINED, Some(diff), detail));
    }
    if p.original_currency == Some(o.currency)
        && let Some(rate) = p.fx_rate
    {
        let orig: i128 = pays.iter().filter_map(|t| t.original_amount).sum();
        let conv = convert_units4(o.amount, rate, c);
        let diff = conv - gross;
        let unit = 10i128.pow(4 - digits(c).min(4));
        if o.amount == orig || diff.abs() <= unit {
            // The columns hold the amounts and the rate; the detail stays short.
            return Some(("fx_conversion", Some(diff), format!("{} → {c}", o.currency)));
        }
        let detail = format!(
            "order {} {} at fx_rate {} = {} {c}; payment gross {} {c} (buyer paid {} {})",
            fmt_amount(o.amount, o.currency),
            o.currency,
            crate::contract::money::format_decimal(rate, 10, 10)
                .trim_end_matches('0')
                .trim_end_matches('.'),
            fmt_amount(conv, c),
            fmt_amount(gross, c),
            fmt_amount(orig, o.currency),
            o.currency
        );
        return Some((UNEXPLAINED, Some(diff), detail));
    }
    Some((
        UNEXPLAINED,
        None,
        format!(
            "order currency {} differs from the payment's {c} and no conversion explains it",
            o.currency
        ),
    ))
}

/// Reconciles one (account, order id): the order (if the seller has it) and its transactions.
fn join_one(
    o: Option<&OrderRec<'_>>,
    ts: Vec<TxnRec<'_>>,
    window: (i32, i32),
    quarantine: &Quarantined,
    findings: &mut Findings,
    sink: &mut Sink,
) -> Result<(), ReconcileError> {
    let in_window = |d: i32| d >= window.0 && d < window.1;
    let mut ts = ts;
    ts.sort_by(|a, b| (a.created_us, &a.transaction_id).cmp(&(b.created_us, &b.transaction_id)));
    let pays: Vec<&TxnRec<'_>> = ts.iter().filter(|t| t.kind == TxnKind::Payment).collect();
    let refunded: i128 = ts
        .iter()
        .filter(|t| t.kind == TxnKind::Refund)
        .map(|t| t.gross)
        .sum();
    let disputed: i128 = ts
        .iter()
        .filter(|t| t.kind == TxnKind::Chargeback)
        .map(|t| t.gross)
        .sum();
    let has_chargeback = ts.iter().any(|t| t.kind == TxnKind::Chargeback);
    let order_in = o.is_some_and(|o| in_window(o.day));
    let pay_day = pays.iter().map(|t| t.local_day).find(|d| in_window(*d));
    if !order_in && pay_day.is_none() {
        return Ok(());
    }
    let day = if order_in {
        o.map_or(0, |o| o.day)
    } else {
        pay_day.unwrap_or(0)
    };
    let first = pays.first().copied();
    let diff_row = |result: &'static str,
                    classification: &'static str,
                    difference: Option<i128>,
                    detail: String,
                    account: &str,
                    order_id: &str,
                    findings: &mut Findings,
                    sink: &mut Sink|
     -> Result<(), ReconcileError> {
        let currency = first
            .map(|p| p.currency)
            .or_else(|| o.map(|o| o.currency))
            .unwrap_or_default()
            .to_string();
        findings.note(Difference {
            check: Check::Orders,
            business_date: date_of(day),
            account_id: account.to_string(),
            currency,
            key: order_id.to_string(),
            result,
            classification,
            detail: detail.clone(),
        });
        let channel = o
            .and_then(|o| o.channel)
            .or_else(|| first.and_then(|p| p.channel));
        sink.orders.push(&[
            Cell::S(Some(account)),
            Cell::D(day),
            Cell::S(Some(order_id)),
            Cell::S(channel),
            Cell::S(Some(result)),
            Cell::S(Some(classification)),
            Cell::B(classification != UNEXPLAINED),
            Cell::S(o.map(|o| o.currency)),
            Cell::N(o.map(|o| o.amount)),
            Cell::T(o.and_then(|o| o.time_us)),
            Cell::S(first.map(|p| p.transaction_id)),
            Cell::S(first.map(|p| p.currency)),
            Cell::N(first.map(|_| pays.iter().map(|t| t.gross).sum())),
            Cell::N(first.map(|_| pays.iter().map(|t| t.fee).sum())),
            Cell::N(first.map(|_| -refunded)),
            Cell::S(first.and_then(|p| p.original_currency)),
            Cell::N(first.and_then(|p| p.original_amount)),
            Cell::N(first.and_then(|p| p.fx_rate)),
            Cell::N(difference),
            Cell::S(Some(&detail)),
        ])?;
        Ok(())
    };
    let Some(o) = o else {
        // Paid, unknown to the seller.
        let p = first.expect("a payment in the window");
        let account = p.account;
        let order = p.order;
        diff_row(
            "paid_not_in_orders",
            UNEXPLAINED,
            None,
            format!(
                "payment {} of {} {} has no seller order",
                p.transaction_id,
                fmt_amount(p.gross, p.currency),
                p.currency
            ),
            account,
            order,
            findings,
            sink,
        )?;
        return Ok(());
    };
    // Totals are kept in the wallet currency the order was paid in.
    let tcur = first.map_or(o.currency, |p| p.currency);
    findings.day(date_of(day), o.account, tcur).orders += 1;
    let status = if has_chargeback {
        "disputed"
    } else if pays.is_empty() {
        "missing"
    } else {
        let paid: i128 = pays.iter().map(|t| t.gross).sum();
        if -refunded >= paid {
            "refunded"
        } else if refunded != 0 {
            "partially_refunded"
        } else {
            "paid"
        }
    };
    if pays.is_empty() {
        let classification = if quarantine
            .orders
            .contains(&(o.account.to_string(), o.order.to_string()))
        {
            "quarantined"
        } else {
            UNEXPLAINED
        };
        diff_row(
            "ordered_not_paid",
            classification,
            None,
            format!(
                "order of {} {} has no payment in the ledger",
                fmt_amount(o.amount, o.currency),
                o.currency
            ),
            o.account,
            o.order,
            findings,
            sink,
        )?;
    } else if order_in && pays.iter().all(|t| t.local_day >= window.1) {
        diff_row(
            "ordered_not_paid",
            "timing",
            None,
            format!(
                "paid after the window, on {} ({})",
                date_of(pays[0].local_day),
                pays[0].transaction_id
            ),
            o.account,
            o.order,
            findings,
            sink,
        )?;
    } else {
        findings.day(date_of(day), o.account, tcur).orders_matched += 1;
        if let Some((class, diff, detail)) = classify_amount(o, &pays, refunded) {
            diff_row(
                "amount_difference",
                class,
                diff,
                detail,
                o.account,
                o.order,
                findings,
                sink,
            )?;
        }
    }
    let last = ts.last().map(|t| t.created_us);
    let channel = o.channel.or_else(|| first.and_then(|p| p.channel));
    sink.status.push(&[
        Cell::S(Some(o.account)),
        Cell::D(day),
        Cell::S(Some(o.order)),
        Cell::S(channel),
        Cell::S(Some(o.currency)),
        Cell::N(Some(o.amount)),
        Cell::T(o.time_us),
        Cell::S(Some(status)),
        Cell::S(first.map(|p| p.currency)),
        Cell::N(first.map(|_| pays.iter().map(|t| t.gross).sum())),
        Cell::N((refunded != 0).then_some(-refunded)),
        Cell::N(has_chargeback.then_some(-disputed)),
        Cell::S(first.map(|p| p.transaction_id)),
        Cell::T(last),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pay<'a>(currency: &'a str, gross: i128, fee: i128) -> TxnRec<'a> {
        TxnRec {
            account: "A",
            order: "O",
            transaction_id: "T",
            kind: TxnKind::Payment,
            currency,
            gross,
            fee,
            original_currency: None,
            original_amount: None,
            fx_rate: None,
            created_us: 0,
            local_day: 0,
            channel: None,
        }
    }

    fn order(currency: &str, amount: i128) -> OrderRec<'_> {
        OrderRec {
            account: "A",
            order: "O",
            channel: None,
            currency,
            amount,
            time_us: None,
            day: 0,
        }
    }

    #[test]
    fn amount_differences_are_classified() {
        let p = pay("SGD", 100_0000, 3_2000);
        assert_eq!(classify_amount(&order("SGD", 100_0000), &[&p], 0), None);
        let c = |o: OrderRec<'_>, refunded| classify_amount(&o, &[&p], refunded).unwrap().0;
        assert_eq!(c(order("SGD", 96_8000), 0), "fee");
        assert_eq!(c(order("SGD", 60_0000), -40_0000), "partial_refund");
        assert_eq!(c(order("SGD", 99_9900), 0), UNEXPLAINED);
        assert_eq!(c(order("EUR", 70_0000), 0), UNEXPLAINED);
        // 68.97 EUR at 1.45 SGD per EUR = 100.0065 → 100.01 SGD: one cent off the gross, FX.
        let mut fx = pay("SGD", 100_0000, 0);
        fx.original_currency = Some("EUR");
        fx.original_amount = Some(68_9700);
        fx.fx_rate = Some(14_500_000_000);
        let o = order("EUR", 68_9700);
        let (class, diff, _) = classify_amount(&o, &[&fx], 0).unwrap();
        assert_eq!((class, diff), ("fx_conversion", Some(100)));
        let wrong = order("EUR", 80_0000);
        assert_eq!(classify_amount(&wrong, &[&fx], 0).unwrap().0, UNEXPLAINED);
        // JPY has no minor digits: conversion rounds to whole yen.
        assert_eq!(convert_units4(1_2345, 1_000_000_000_000, "JPY"), 123_0000);
    }

    #[test]
    fn order_times_parse_in_the_account_zone() {
        let sg = chrono_tz::Asia::Singapore;
        let utc = parse_time("2026-03-06T15:30:00Z", sg).unwrap();
        assert_eq!(parse_time("2026-03-06T23:30:00+08:00", sg), Some(utc));
        assert_eq!(parse_time("2026-03-06 23:30:00", sg), Some(utc));
        assert_eq!(
            local_day(sg, utc),
            day_number(NaiveDate::from_ymd_opt(2026, 3, 6).unwrap())
        );
        assert_eq!(parse_time("", sg), None);
        assert_eq!(parse_time("yesterday", sg), None);
    }
}
