//! Owns the orders join's records and their spill buckets.
//!
//! Both sides (seller orders, ledger transactions) as records; each (account, order id) is
//! hashed to one of `k` bucket files per side, so a bucket pair joins in memory.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::reconcile::config::ReconcileError;
use crate::reconcile::spill::{Dec, Enc, spill_err};

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

impl<'a> TxnRec<'a> {
    pub(super) fn encode(&self, e: &mut Enc<'_>) {
        e.str(self.account);
        e.str(self.order);
        e.str(self.transaction_id);
        e.u8(self.kind.code());
        e.str(self.currency);
        e.i128(self.gross);
        e.i128(self.fee);
        e.opt_str(self.original_currency);
        e.opt_i128(self.original_amount);
        e.opt_i128(self.fx_rate);
        e.i64(self.created_us);
        e.i32(self.local_day);
        e.opt_str(self.channel);
    }

    pub(super) fn decode(d: &mut Dec<'a>) -> TxnRec<'a> {
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
            local_day: d.i32(),
            channel: d.opt_str(),
        }
    }
}

/// One seller order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OrderRec<'a> {
    pub(super) account: &'a str,
    pub(super) order: &'a str,
    pub(super) channel: Option<&'a str>,
    pub(super) currency: &'a str,
    pub(super) amount: i128,
    pub(super) time_us: Option<i64>,
    /// Account-local day of the order time; `i32::MIN` when the order has no time.
    pub(super) day: i32,
}

impl<'a> OrderRec<'a> {
    pub(super) fn encode(&self, e: &mut Enc<'_>) {
        e.str(self.account);
        e.str(self.order);
        e.opt_str(self.channel);
        e.str(self.currency);
        e.i128(self.amount);
        e.opt_i64(self.time_us);
        e.i32(self.day);
    }

    pub(super) fn decode(d: &mut Dec<'a>) -> OrderRec<'a> {
        OrderRec {
            account: d.str(),
            order: d.str(),
            channel: d.opt_str(),
            currency: d.str(),
            amount: d.i128(),
            time_us: d.opt_i64(),
            day: d.i32(),
        }
    }
}

/// The bucket of an (account, order id) among `k`.
pub(super) fn bucket_of(account: &str, order: &str, k: usize) -> usize {
    let mut h = DefaultHasher::new();
    account.hash(&mut h);
    order.hash(&mut h);
    (h.finish() % k as u64) as usize
}

/// FxHash (rustc's hasher): the join's keys are not attacker-chosen hash-flooding material
/// worth SipHash's cost — they are the merchant's own order ids.
#[derive(Default)]
pub(super) struct Fx(u64);

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

/// A hash map with [`Fx`].
pub(super) type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fx>>;

/// One side's buckets.
pub(super) struct Buckets {
    files: Vec<BufWriter<std::fs::File>>,
    paths: Vec<PathBuf>,
    buf: Vec<u8>,
}

impl Buckets {
    /// `k` files `<side>-<i>.bin` in `dir`.
    pub(super) fn create(dir: &Path, side: &str, k: usize) -> Result<Buckets, ReconcileError> {
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

    /// Number of buckets.
    pub(super) fn k(&self) -> usize {
        self.files.len()
    }

    /// Appends one record (written by `encode`) to bucket `i`.
    pub(super) fn write(
        &mut self,
        i: usize,
        encode: impl FnOnce(&mut Enc<'_>),
    ) -> Result<(), ReconcileError> {
        encode(&mut Enc(&mut self.buf));
        let r = self.files[i].write_all(&self.buf);
        self.buf.clear();
        r.map_err(|e| spill_err(&self.paths[i], e))
    }

    /// Flushes the files; returns their paths, bucket by bucket.
    pub(super) fn close(self) -> Result<Vec<PathBuf>, ReconcileError> {
        for (mut f, p) in self.files.into_iter().zip(&self.paths) {
            f.flush().map_err(|e| spill_err(p, e))?;
        }
        Ok(self.paths)
    }
}
