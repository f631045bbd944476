//! Owns the facts an order's status is derived from: its ledger entries, disputes and the
//! settlement batches of its payments, each at its latest version, and how two sets merge.
//!
//! Facts are kept in `order_status.facts` (JSON), so the next run merges what it pulled with
//! what earlier runs saw instead of reading the order's whole history again. Merging keeps, per
//! id, the version with the greatest `updated_at` (the newer one on a tie): it is idempotent and
//! order-free, so replaying a window or a crashed step changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Amounts in warehouse units (`Decimal128(18, 4)`), stored as decimal text.
mod units {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::contract::money::fmt_units4(*v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        let t = String::deserialize(d)?;
        crate::contract::money::units4(&t)
            .ok_or_else(|| serde::de::Error::custom(format!("`{t}` is not an amount")))
    }
}

/// One ledger entry of the order (`transactions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnFact {
    /// `type`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `currency`.
    pub currency: String,
    /// `gross_amount`.
    #[serde(with = "units")]
    pub gross: i128,
    /// `net_amount`.
    #[serde(with = "units")]
    pub net: i128,
    /// `created_at`, UTC microseconds.
    pub created_us: i64,
    /// `updated_at`, UTC microseconds.
    pub updated_us: i64,
    /// Account-local business day of `created_at` (`Date32`).
    pub day: i32,
    /// `settlement_batch_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// `related_transaction_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
    /// `channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl TxnFact {
    /// Whether it moved money: not `FAILED` nor `REVERSED`.
    pub fn counts(&self) -> bool {
        !matches!(self.status.as_str(), "FAILED" | "REVERSED")
    }
}

/// One dispute of the order (`disputes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeFact {
    /// `kind`: `INQUIRY`, `CHARGEBACK`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `currency`.
    pub currency: String,
    /// `amount` (> 0).
    #[serde(with = "units")]
    pub amount: i128,
    /// `transaction_id`: the disputed payment.
    pub transaction_id: String,
    /// `chargeback_transaction_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chargeback: Option<String>,
    /// `reversal_transaction_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal: Option<String>,
    /// `updated_at`, UTC microseconds.
    pub updated_us: i64,
}

impl DisputeFact {
    /// Still waiting for a decision.
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "NEEDS_RESPONSE" | "UNDER_REVIEW")
    }
}

/// The settlement batch of one of the order's payments (`settlements`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchFact {
    /// `status`: `OPEN`, `CLOSED`, `PAID`.
    pub status: String,
    /// `updated_at`, UTC microseconds.
    pub updated_us: i64,
}

/// Facts by id, sorted by id: a map of the one to few entries an order has, kept in one
/// exactly sized vector (a `BTreeMap` allocates a node of eleven entries for the first one, and
/// a step holds the facts of tens of thousands of orders at once). Serialised as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap<V>(Vec<(String, V)>);

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap(Vec::new())
    }
}

impl<V> IdMap<V> {
    fn at(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(id))
    }

    /// The entry of `id`.
    pub fn get(&self, id: &str) -> Option<&V> {
        self.at(id).ok().map(|i| &self.0[i].1)
    }

    /// The entry of `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.at(id).ok().map(|i| &mut self.0[i].1)
    }

    /// Puts `v` under `id` (replacing what was there).
    pub fn insert(&mut self, id: String, v: V) {
        match self.at(&id) {
            Ok(i) => self.0[i].1 = v,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (id, v));
            }
        }
    }

    /// Entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Ids in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    /// Entries in id order.
    pub fn values(&self) -> impl Iterator<Item = &V> + Clone {
        self.0.iter().map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> std::ops::Index<&str> for IdMap<V> {
    type Output = V;
    fn index(&self, id: &str) -> &V {
        self.get(id).expect("an id of the map")
    }
}

impl<V: Serialize> Serialize for IdMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for IdMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a `BTreeMap`: sorted, and a repeated id keeps its last value.
        let m = BTreeMap::<String, V>::deserialize(d)?;
        Ok(IdMap(m.into_iter().collect()))
    }
}

/// Everything known about one order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Ledger entries by `transaction_id`.
    #[serde(default)]
    pub txns: IdMap<TxnFact>,
    /// Disputes by `dispute_id`.
    #[serde(default, skip_serializing_if = "IdMap::is_empty")]
    pub disputes: IdMap<DisputeFact>,
    /// Batches of its payments by `settlement_batch_id`.
    #[serde(default, skip_serializing_if = "IdMap::is_empty")]
    pub batches: IdMap<BatchFact>,
}

/// Puts `new` into `map` unless the stored version is newer; whether anything changed.
fn newest<V: PartialEq + Clone>(
    map: &mut IdMap<V>,
    id: &str,
    new: &V,
    at: impl Fn(&V) -> i64,
) -> bool {
    match map.get(id) {
        Some(old) if at(old) > at(new) || old == new => false,
        _ => {
            map.insert(id.to_string(), new.clone());
            true
        }
    }
}

impl Facts {
    /// Merges `other` in (newest version per id); the ids that were new or changed.
    pub fn merge(&mut self, other: &Facts) -> Causes {
        let mut c = Causes::default();
        for (id, t) in other.txns.iter() {
            if newest(&mut self.txns, id, t, |t| t.updated_us) {
                c.transaction_ids.push(id.clone());
            }
        }
        for (id, d) in other.disputes.iter() {
            if newest(&mut self.disputes, id, d, |d| d.updated_us) {
                c.dispute_ids.push(id.clone());
            }
        }
        for (id, b) in other.batches.iter() {
            if newest(&mut self.batches, id, b, |b| b.updated_us) {
                c.settlement_batch_ids.push(id.clone());
            }
        }
        c
    }

    /// Adds one ledger entry (newest version wins).
    pub fn add_txn(&mut self, id: &str, t: TxnFact) {
        newest(&mut self.txns, id, &t, |t| t.updated_us);
    }

    /// Adds one dispute (newest version wins).
    pub fn add_dispute(&mut self, id: &str, d: DisputeFact) {
        newest(&mut self.disputes, id, &d, |d| d.updated_us);
    }

    /// Adds one batch (newest version wins).
    pub fn add_batch(&mut self, id: &str, b: BatchFact) {
        newest(&mut self.batches, id, &b, |b| b.updated_us);
    }

    /// The batches the order's payments name.
    pub fn payment_batches(&self) -> impl Iterator<Item = (&str, i32)> {
        self.txns
            .values()
            .filter(|t| t.kind == "PAYMENT")
            .filter_map(|t| t.batch.as_deref().map(|b| (b, t.day)))
    }

    /// The latest `updated_at` among the named causes (when the change happened).
    pub fn latest_of(&self, c: &Causes) -> Option<i64> {
        let t = c.transaction_ids.iter().filter_map(|i| self.txns.get(i));
        let d = c.dispute_ids.iter().filter_map(|i| self.disputes.get(i));
        let b = c
            .settlement_batch_ids
            .iter()
            .filter_map(|i| self.batches.get(i));
        t.map(|t| t.updated_us)
            .chain(d.map(|d| d.updated_us))
            .chain(b.map(|b| b.updated_us))
            .max()
    }
}

/// The ids behind a change: entries, disputes and batches that were new or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causes {
    /// Ledger entries.
    pub transaction_ids: Vec<String>,
    /// Disputes.
    pub dispute_ids: Vec<String>,
    /// Settlement batches.
    pub settlement_batch_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(status: &str, updated_us: i64) -> TxnFact {
        TxnFact {
            kind: "PAYMENT".into(),
            status: status.into(),
            currency: "SGD".into(),
            gross: 10_0000,
            net: 9_5000,
            created_us: 1,
            updated_us,
            day: 20_000,
            batch: None,
            related: None,
            channel: None,
        }
    }

    #[test]
    fn merge_keeps_the_newest_version_and_names_what_changed() {
        let mut a = Facts::default();
        a.add_txn("T1", txn("PENDING", 1));
        let mut b = Facts::default();
        b.add_txn("T1", txn("SETTLED", 2));
        b.add_txn("T2", txn("PENDING", 1));
        let c = a.merge(&b);
        assert_eq!(c.transaction_ids, ["T1", "T2"]);
        assert_eq!(a.txns["T1"].status, "SETTLED");
        // An older version, or the same one again, changes nothing.
        let mut old = Facts::default();
        old.add_txn("T1", txn("PENDING", 1));
        assert_eq!(a.merge(&old), Causes::default());
        assert_eq!(a.merge(&b), Causes::default());
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"gross\":\"10.0000\""), "{json}");
        assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), a);
    }
}
