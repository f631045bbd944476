//! Owns the builders of the money-movement result tables: `recon_disputes` and `recon_payouts`.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder,
    StringBuilder,
};

use super::{RowBuilder, amounts, text};
use crate::contract::table::TableDef;
use crate::reconcile::rows::{DisputeRow, PayoutRow};
use crate::reconcile::tables::{RECON_DISPUTES, RECON_PAYOUTS};

/// Builders of `recon_disputes`.
#[derive(Default)]
pub struct DisputesBuilder {
    account_id: StringBuilder,
    business_date: Date32Builder,
    rule: StringBuilder,
    transaction_id: StringBuilder,
    dispute_id: StringBuilder,
    chargeback_transaction_id: StringBuilder,
    currency: StringBuilder,
    dispute_status: StringBuilder,
    dispute_amount: Decimal128Builder,
    dispute_fee_amount: Decimal128Builder,
    ledger_gross_amount: Decimal128Builder,
    ledger_net_amount: Decimal128Builder,
    result: StringBuilder,
    classification: StringBuilder,
    explained: BooleanBuilder,
    detail: StringBuilder,
}

impl RowBuilder for DisputesBuilder {
    type Row<'r> = DisputeRow<'r>;
    fn table() -> &'static TableDef {
        &RECON_DISPUTES
    }
    fn append(&mut self, r: &DisputeRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.business_date.append_value(r.business_date);
        self.rule.append_value(r.rule);
        self.transaction_id.append_option(r.transaction_id);
        self.dispute_id.append_option(r.dispute_id);
        self.chargeback_transaction_id
            .append_option(r.chargeback_transaction_id);
        self.currency.append_option(r.currency);
        self.dispute_status.append_option(r.dispute_status);
        self.dispute_amount.append_option(r.dispute_amount);
        self.dispute_fee_amount.append_option(r.dispute_fee_amount);
        self.ledger_gross_amount
            .append_option(r.ledger_gross_amount);
        self.ledger_net_amount.append_option(r.ledger_net_amount);
        self.result.append_value(r.result);
        self.classification.append_value(r.classification);
        self.explained.append_value(r.explained);
        self.detail.append_option(r.detail);
    }
    fn rows(&self) -> usize {
        self.account_id.len()
    }
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("account_id", text(&mut self.account_id)),
            ("business_date", Arc::new(self.business_date.finish())),
            ("rule", text(&mut self.rule)),
            ("transaction_id", text(&mut self.transaction_id)),
            ("dispute_id", text(&mut self.dispute_id)),
            (
                "chargeback_transaction_id",
                text(&mut self.chargeback_transaction_id),
            ),
            ("currency", text(&mut self.currency)),
            ("dispute_status", text(&mut self.dispute_status)),
            ("dispute_amount", amounts(&mut self.dispute_amount)),
            ("dispute_fee_amount", amounts(&mut self.dispute_fee_amount)),
            (
                "ledger_gross_amount",
                amounts(&mut self.ledger_gross_amount),
            ),
            ("ledger_net_amount", amounts(&mut self.ledger_net_amount)),
            ("result", text(&mut self.result)),
            ("classification", text(&mut self.classification)),
            ("explained", Arc::new(self.explained.finish())),
            ("detail", text(&mut self.detail)),
        ]
    }
}

/// Builders of `recon_payouts`.
#[derive(Default)]
pub struct PayoutsBuilder {
    account_id: StringBuilder,
    business_date: Date32Builder,
    rule: StringBuilder,
    payout_id: StringBuilder,
    settlement_batch_id: StringBuilder,
    currency: StringBuilder,
    payout_status: StringBuilder,
    payout_amount: Decimal128Builder,
    batches_net_amount: Decimal128Builder,
    batch_count: Int64Builder,
    paid_payouts: Int64Builder,
    result: StringBuilder,
    classification: StringBuilder,
    explained: BooleanBuilder,
    detail: StringBuilder,
}

impl RowBuilder for PayoutsBuilder {
    type Row<'r> = PayoutRow<'r>;
    fn table() -> &'static TableDef {
        &RECON_PAYOUTS
    }
    fn append(&mut self, r: &PayoutRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.business_date.append_value(r.business_date);
        self.rule.append_value(r.rule);
        self.payout_id.append_option(r.payout_id);
        self.settlement_batch_id
            .append_option(r.settlement_batch_id);
        self.currency.append_option(r.currency);
        self.payout_status.append_option(r.payout_status);
        self.payout_amount.append_option(r.payout_amount);
        self.batches_net_amount.append_option(r.batches_net_amount);
        self.batch_count.append_option(r.batch_count);
        self.paid_payouts.append_option(r.paid_payouts);
        self.result.append_value(r.result);
        self.classification.append_value(r.classification);
        self.explained.append_value(r.explained);
        self.detail.append_option(r.detail);
    }
    fn rows(&self) -> usize {
        self.account_id.len()
    }
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("account_id", text(&mut self.account_id)),
            ("business_date", Arc::new(self.business_date.finish())),
            ("rule", text(&mut self.rule)),
            ("payout_id", text(&mut self.payout_id)),
            ("settlement_batch_id", text(&mut self.settlement_batch_id)),
            ("currency", text(&mut self.currency)),
            ("payout_status", text(&mut self.payout_status)),
            ("payout_amount", amounts(&mut self.payout_amount)),
            ("batches_net_amount", amounts(&mut self.batches_net_amount)),
            ("batch_count", Arc::new(self.batch_count.finish())),
            ("paid_payouts", Arc::new(self.paid_payouts.finish())),
            ("result", text(&mut self.result)),
            ("classification", text(&mut self.classification)),
            ("explained", Arc::new(self.explained.finish())),
            ("detail", text(&mut self.detail)),
        ]
    }
}
