//! Disputes (§7), consistent with the ledger: every `CHARGEBACK` entry belongs to a chargeback
//! dispute, a won chargeback's funds come back in an `ADJUSTMENT` entry, and inquiries move no
//! money unless they escalate.
//!
//! The rules, all pure functions of the seed and the anchoring transaction:
//! - a chargeback dispute is anchored at its `CHARGEBACK` entry (withdrawn at the entry's
//!   creation); 25 % of them began as an inquiry up to 6 days earlier and escalate at that
//!   moment (same `dispute_id`, `kind` becomes `CHARGEBACK`);
//! - 0.5 % of payments that did not fail get an inquiry 1–5 days after them that never
//!   escalates (anchored at the payment);
//! - evidence is due 7 days after a dispute (or its escalation) opens; a chargeback is
//!   `ACCEPTED` within 3 days (15 %), `EXPIRED` at the due date (10 %), or answered
//!   (`UNDER_REVIEW`) within 6 days and decided on its decision day, 10–16 days after the
//!   withdrawal: `WON` (half of them) at the creation of the `ADJUSTMENT` entry that returns the
//!   amount and the fee, or `LOST`; an inquiry `EXPIRES` (20 %), is `ACCEPTED` (10 %) or is
//!   answered and `WON`;
//! - the entries returning won chargebacks take the places of the decision day's first
//!   adjustments, one each in (withdrawal day, index) order; a won chargeback finding no
//!   adjustment left that day (rare, on quiet days) is `LOST`.

use chrono::NaiveDate;

use super::generate::{CHARGEBACK_ROLLS, PAYMENT_ROLLS};
use super::{DayCtx, HOUR_MS, Txn, TxnType, World, day_key, local_midnight_ms};
use crate::sandbox::rng::{Rng, hash};

const DAY_MS: i64 = 24 * HOUR_MS;
/// Days after a dispute or its escalation opens that evidence is due.
pub const EVIDENCE_DAYS: i64 = 7;
/// The earliest decision day of a chargeback, in days after its withdrawal day.
pub(super) const DECISION_MIN_DAYS: u64 = 10;
/// How many decision days there are (from `DECISION_MIN_DAYS`).
pub(super) const DECISION_SPREAD_DAYS: u64 = 7;
/// Payments per 10 000 that get an inquiry that never escalates.
const INQUIRIES_PER_10K: u64 = 50;
/// How many days before its anchor's day a dispute can have been created (an escalated
/// inquiry: up to 6 days before the withdrawal).
pub const MAX_DAYS_BEFORE_ANCHOR: i64 = 7;
/// How many days after its anchor's day a dispute can have been created (an inquiry: up to 5
/// days after the payment).
pub const MAX_DAYS_AFTER_CREATION: i64 = 6;
/// How many days after its anchor's day a dispute can still change (a chargeback's decision
/// day is at most 16 days after the withdrawal; an inquiry is decided within 19 days of its
/// payment).
pub const MAX_DAYS_AFTER_ANCHOR: i64 = 20;

/// `INQUIRY` or `CHARGEBACK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeKind {
    /// The buyer's bank asks; no money moves.
    Inquiry,
    /// The funds are withdrawn from the merchant.
    Chargeback,
}

impl DisputeKind {
    /// Wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeKind::Inquiry => "INQUIRY",
            DisputeKind::Chargeback => "CHARGEBACK",
        }
    }
}

/// Life-cycle state of a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    /// Waiting for the merchant's evidence.
    NeedsResponse,
    /// Evidence given; the bank decides.
    UnderReview,
    /// Decided for the merchant.
    Won,
    /// Decided for the buyer.
    Lost,
    /// The merchant accepted the claim.
    Accepted,
    /// No evidence by the due date.
    Expired,
}

impl DisputeStatus {
    /// Wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::NeedsResponse => "NEEDS_RESPONSE",
            DisputeStatus::UnderReview => "UNDER_REVIEW",
            DisputeStatus::Won => "WON",
            DisputeStatus::Lost => "LOST",
            DisputeStatus::Accepted => "ACCEPTED",
            DisputeStatus::Expired => "EXPIRED",
        }
    }

    /// Whether the dispute is over (`closed_at` is set).
    pub fn is_closed(self) -> bool {
        !matches!(
            self,
            DisputeStatus::NeedsResponse | DisputeStatus::UnderReview
        )
    }
}

/// One change of a dispute: from `at_ms` on, it is of `kind` in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisputeStep {
    /// When (UTC ms).
    pub at_ms: i64,
    /// Kind from then on.
    pub kind: DisputeKind,
    /// Status from then on.
    pub status: DisputeStatus,
}

/// One dispute's true values and its whole life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// Account position.
    pub account: u32,
    /// The transaction its id is derived from: its `CHARGEBACK` entry, or the payment of an
    /// inquiry that never escalates.
    pub anchor: (NaiveDate, u32),
    /// The disputed payment.
    pub payment: (NaiveDate, u32),
    /// The `CHARGEBACK` entry, for a chargeback (from its withdrawal step on).
    pub chargeback: Option<(NaiveDate, u32)>,
    /// The `ADJUSTMENT` entry returning the funds (from the `WON` step on).
    pub reversal: Option<(NaiveDate, u32)>,
    /// The payment's channel and marketplace order.
    pub order: Option<(&'static str, (NaiveDate, u32))>,
    /// `reason_code`.
    pub reason: &'static str,
    /// The payment's currency.
    pub currency: &'static str,
    /// Its minor-unit digits.
    pub digits: u8,
    /// Disputed amount (minor units, > 0, at most the payment's gross).
    pub amount: i64,
    /// The fee charged once it is a chargeback.
    pub fee: i64,
    /// Every change, in time order; the first is its creation.
    pub steps: Vec<DisputeStep>,
}

impl Dispute {
    /// When it was created.
    pub fn created_ms(&self) -> i64 {
        self.steps[0].at_ms
    }

    /// Its state at `now_ms`; `None` before it is created.
    pub fn at(&self, now_ms: i64) -> Option<DisputeStep> {
        self.steps.iter().rev().find(|s| s.at_ms <= now_ms).copied()
    }

    /// When the funds were withdrawn (it became a chargeback).
    pub fn withdrawn_ms(&self) -> Option<i64> {
        self.steps
            .iter()
            .find(|s| s.kind == DisputeKind::Chargeback)
            .map(|s| s.at_ms)
    }

    /// `evidence_due_by` at `now_ms`: set while `NEEDS_RESPONSE`, 7 days after the dispute or
    /// its escalation opened.
    pub fn evidence_due_ms(&self, now_ms: i64) -> Option<i64> {
        let now = self.at(now_ms)?;
        if now.status != DisputeStatus::NeedsResponse {
            return None;
        }
        let opened = self
            .steps
            .iter()
            .rev()
            .find(|s| s.at_ms <= now_ms && s.status == DisputeStatus::NeedsResponse)?;
        Some(opened.at_ms + EVIDENCE_DAYS * DAY_MS)
    }
}

/// How a chargeback ends, drawn from its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChargebackEnd {
    Accepted,
    Expired,
    Won,
    Lost,
}

/// `reason_code` values, by weight; the last is one clients do not know yet.
const REASONS: [(&str, u64, &str); 7] = [
    ("FRAUD", 30, "fraudulent"),
    ("NOT_RECEIVED", 25, "item not received"),
    ("NOT_AS_DESCRIBED", 20, "not as described"),
    ("CREDIT_NOT_PROCESSED", 10, "credit not processed"),
    ("DUPLICATE", 8, "duplicate charge"),
    ("OTHER", 5, "other"),
    ("SUBSCRIPTION_CANCELED", 2, "subscription canceled"),
];

fn pick_reason(r: &mut Rng) -> &'static str {
    let total: u64 = REASONS.iter().map(|x| x.1).sum();
    let mut roll = r.below(total);
    for (code, weight, _) in REASONS {
        if roll < weight {
            return code;
        }
        roll -= weight;
    }
    REASONS[0].0
}

/// The words a statement description uses for a reason code.
pub fn reason_text(code: &str) -> &'static str {
    REASONS
        .iter()
        .find(|x| x.0 == code)
        .map_or("other", |x| x.2)
}

impl World {
    /// Dispute id of the transaction (`CHARGEBACK` entry or payment) it is anchored at.
    pub fn dispute_id(&self, account: u32, date: NaiveDate, i: u32) -> String {
        format!(
            "DSP-{}-{}-{:07}",
            self.accounts[account as usize].code,
            date.format("%Y%m%d"),
            i
        )
    }

    /// The draws of the dispute anchored at (`date`, `i`): the stream, whether a chargeback
    /// began as an inquiry, and its reason.
    fn dispute_draws(&self, account: u32, date: NaiveDate, i: u32) -> (Rng, bool, &'static str) {
        let mut r = Rng::new(&[self.p.seed, 0x6473, account as u64, day_key(date), i as u64]);
        let escalated = r.chance(0.25);
        let reason = pick_reason(&mut r);
        (r, escalated, reason)
    }

    /// The reason code of the dispute anchored at (`date`, `i`).
    pub fn dispute_reason(&self, account: u32, date: NaiveDate, i: u32) -> &'static str {
        self.dispute_draws(account, date, i).2
    }

    /// How the chargeback whose entry is (`date`, `i`) ends.
    pub(super) fn chargeback_end(&self, account: u32, date: NaiveDate, i: u32) -> ChargebackEnd {
        match hash(&[self.p.seed, 0x6f75, account as u64, day_key(date), i as u64]) % 1000 {
            0..150 => ChargebackEnd::Accepted,
            150..250 => ChargebackEnd::Expired,
            250..625 => ChargebackEnd::Won,
            _ => ChargebackEnd::Lost,
        }
    }

    /// The day chargebacks withdrawn on `date` are decided: 10–16 days later.
    pub(super) fn decision_day(&self, account: u32, date: NaiveDate) -> NaiveDate {
        let k = hash(&[self.p.seed, 0x6464, account as u64, day_key(date)]) % DECISION_SPREAD_DAYS;
        date + chrono::Days::new(DECISION_MIN_DAYS + k)
    }

    /// The `CHARGEBACK` entries of one day, in index order.
    pub fn chargebacks_of(&self, day: &DayCtx) -> Vec<Txn> {
        (0..day.n)
            .filter(|&i| CHARGEBACK_ROLLS.contains(&self.kind_roll(day, i)))
            .map(|i| self.txn(day, i))
            .filter(|t| t.kind == TxnType::Chargeback)
            .collect()
    }

    /// The dispute of `CHARGEBACK` entry `cb`.
    pub fn chargeback_dispute(&self, cb: &Txn) -> Dispute {
        let a = &self.accounts[cb.day.account as usize];
        let (pd, pi) = cb.related.expect("a chargeback refers to its payment");
        let payment = self.txn(&self.day(a, pd), pi);
        let (mut r, escalated, reason) = self.dispute_draws(a.index, cb.day.date, cb.index);
        let c = cb.created_ms;
        let step = |at_ms, kind, status| DisputeStep {
            at_ms,
            kind,
            status,
        };
        let mut steps = Vec::with_capacity(4);
        if escalated {
            let span = (c - payment.created_ms).clamp(2 * HOUR_MS, 6 * DAY_MS);
            let before = (span as f64 * (0.2 + 0.7 * r.unit())) as i64;
            steps.push(step(
                c - before,
                DisputeKind::Inquiry,
                DisputeStatus::NeedsResponse,
            ));
        }
        let cb_kind = DisputeKind::Chargeback;
        steps.push(step(c, cb_kind, DisputeStatus::NeedsResponse));
        let accepted_ms = c + 2 * HOUR_MS + r.below(70 * HOUR_MS as u64) as i64;
        let review_ms = c + 2 * HOUR_MS + r.below((6 * DAY_MS - 2 * HOUR_MS) as u64) as i64;
        let lost_after_midnight = 12 * HOUR_MS + r.below(6 * HOUR_MS as u64) as i64;
        let mut reversal = None;
        match self.chargeback_end(a.index, cb.day.date, cb.index) {
            ChargebackEnd::Accepted => {
                steps.push(step(accepted_ms, cb_kind, DisputeStatus::Accepted))
            }
            ChargebackEnd::Expired => steps.push(step(
                c + EVIDENCE_DAYS * DAY_MS,
                cb_kind,
                DisputeStatus::Expired,
            )),
            end => {
                steps.push(step(review_ms, cb_kind, DisputeStatus::UnderReview));
                reversal = (end == ChargebackEnd::Won)
                    .then(|| self.reversal_of(cb))
                    .flatten();
                let decided = match reversal {
                    Some((d, j)) => {
                        let ms = self.day(a, d).created_ms(self.p.seed, j);
                        step(ms, cb_kind, DisputeStatus::Won)
                    }
                    None => {
                        let day = self.decision_day(a.index, cb.day.date);
                        let ms = local_midnight_ms(a.tz, day) + lost_after_midnight;
                        step(ms, cb_kind, DisputeStatus::Lost)
                    }
                };
                steps.push(decided);
            }
        }
        Dispute {
            account: a.index,
            anchor: (cb.day.date, cb.index),
            payment: (pd, pi),
            chargeback: Some((cb.day.date, cb.index)),
            reversal,
            order: payment.channel.zip(payment.order_of),
            reason,
            currency: cb.currency,
            digits: cb.digits,
            amount: -cb.gross,
            fee: cb.fee,
            steps,
        }
    }

    /// Whether payment `i` of `day` (if it is one that did not fail) gets an inquiry that
    /// never escalates: a cheap draw, checked before the payment is generated.
    fn inquiry_drawn(&self, day: &DayCtx, i: u32) -> bool {
        let h = hash(&[
            self.p.seed,
            0x6971,
            day.account as u64,
            day_key(day.date),
            i as u64,
        ]);
        h % 10_000 < INQUIRIES_PER_10K
    }

    /// The inquiry against `payment` that never escalates.
    fn inquiry_dispute(&self, payment: &Txn) -> Dispute {
        let (d, i) = (payment.day.date, payment.index);
        let (mut r, _, reason) = self.dispute_draws(payment.day.account, d, i);
        let created = payment.created_ms + DAY_MS + r.below(4 * DAY_MS as u64) as i64;
        let amount = if r.chance(0.2) {
            (payment.gross / 2).max(1)
        } else {
            payment.gross
        };
        let kind = DisputeKind::Inquiry;
        let step = |at_ms, status| DisputeStep {
            at_ms,
            kind,
            status,
        };
        let mut steps = vec![step(created, DisputeStatus::NeedsResponse)];
        match r.below(100) {
            0..20 => steps.push(step(
                created + EVIDENCE_DAYS * DAY_MS,
                DisputeStatus::Expired,
            )),
            20..30 => steps.push(step(
                created + 2 * HOUR_MS + r.below(70 * HOUR_MS as u64) as i64,
                DisputeStatus::Accepted,
            )),
            _ => {
                let review = created + 2 * HOUR_MS + r.below((5 * DAY_MS) as u64) as i64;
                steps.push(step(review, DisputeStatus::UnderReview));
                let won = review + DAY_MS + r.below(7 * DAY_MS as u64) as i64;
                steps.push(step(won, DisputeStatus::Won));
            }
        }
        Dispute {
            account: payment.day.account,
            anchor: (d, i),
            payment: (d, i),
            chargeback: None,
            reversal: None,
            order: payment.channel.zip(payment.order_of),
            reason,
            currency: payment.currency,
            digits: payment.digits,
            amount,
            fee: 0,
            steps,
        }
    }

    /// The disputes anchored at transactions of `day`, in index order.
    pub fn disputes_anchored(&self, day: &DayCtx) -> Vec<Dispute> {
        let mut out = Vec::new();
        for i in 0..day.n {
            let roll = self.kind_roll(day, i);
            if CHARGEBACK_ROLLS.contains(&roll) {
                let t = self.txn(day, i);
                if t.kind == TxnType::Chargeback {
                    out.push(self.chargeback_dispute(&t));
                }
            } else if roll < PAYMENT_ROLLS && self.inquiry_drawn(day, i) {
                let t = self.txn(day, i);
                if !t.failed {
                    out.push(self.inquiry_dispute(&t));
                }
            }
        }
        out
    }
}
