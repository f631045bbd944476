//! Owns the result rows: one struct per result table, one field per column.
//!
//! `recon_settlements`, `recon_statements`, `recon_orders`, `order_status` and `recon_portal` (see
//! [`super::tables`]): fields in the table's column order, lineage aside. Amounts are
//! `Decimal128(18, 4)` units, rates `Decimal128(20, 10)` units, days `Date32`, instants UTC
//! microseconds.

use super::spill::{Dec, Enc};
use super::stage::StagedRow;

/// A row of `recon_settlements`: one settlement batch against the transactions carrying its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRow<'a> {
    /// Account.
    pub account_id: &'a str,
    /// The batch's business day.
    pub business_date: i32,
    /// Batch currency.
    pub currency: Option<&'a str>,
    /// Batch id.
    pub settlement_batch_id: &'a str,
    /// Stored status (`None`: no such batch is stored).
    pub batch_status: Option<&'a str>,
    /// Stored transaction count.
    pub batch_transaction_count: Option<i64>,
    /// Transactions carrying the id.
    pub ledger_transaction_count: i64,
    /// Stored gross.
    pub batch_gross_amount: Option<i128>,
    /// Gross of the transactions.
    pub ledger_gross_amount: i128,
    /// Stored fees.
    pub batch_fee_amount: Option<i128>,
    /// Fees of the transactions.
    pub ledger_fee_amount: i128,
    /// Stored net.
    pub batch_net_amount: Option<i128>,
    /// Net of the transactions.
    pub ledger_net_amount: i128,
    /// `match`, `open`, `mismatch` or `no_batch`.
    pub result: &'a str,
    /// `none`, `not_checked`, `quarantined` or `unexplained`.
    pub classification: &'a str,
    /// Whether the classification explains the result.
    pub explained: bool,
    /// What differs.
    pub detail: Option<&'a str>,
}

/// A row of `recon_statements`: one transaction on which a statement and the ledger differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRow<'a> {
    /// Account.
    pub account_id: &'a str,
    /// The statement's business day.
    pub business_date: i32,
    /// Transaction.
    pub transaction_id: &'a str,
    /// Currency.
    pub currency: Option<&'a str>,
    /// `field_mismatch`, `missing_in_ledger` or `missing_in_statement`.
    pub result: &'a str,
    /// Fields that differ, comma-separated.
    pub fields: Option<&'a str>,
    /// Their statement values, `; `-separated.
    pub statement_values: Option<&'a str>,
    /// Their ledger values, `; `-separated.
    pub ledger_values: Option<&'a str>,
    /// Statement net.
    pub statement_net_amount: Option<i128>,
    /// Ledger net.
    pub ledger_net_amount: Option<i128>,
    /// `timing`, `quarantined` or `unexplained`.
    pub classification: &'a str,
    /// Whether the classification explains the result.
    pub explained: bool,
}

/// A row of `recon_orders`: one difference between a seller order and the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow<'a> {
    /// Account.
    pub account_id: &'a str,
    /// Business day of the order (or of the payment, for a payment without order).
    pub business_date: i32,
    /// Marketplace order id.
    pub external_order_id: &'a str,
    /// Sales channel.
    pub channel: Option<&'a str>,
    /// `amount_difference`, `ordered_not_paid` or `paid_not_in_orders`.
    pub result: &'a str,
    /// `fee`, `partial_refund`, `fx_conversion`, `timing`, `quarantined` or `unexplained`.
    pub classification: &'a str,
    /// Whether the classification explains the result.
    pub explained: bool,
    /// The seller's currency.
    pub order_currency: Option<&'a str>,
    /// The seller's amount.
    pub order_amount: Option<i128>,
    /// The seller's order time.
    pub order_time: Option<i64>,
    /// The (first) payment.
    pub transaction_id: Option<&'a str>,
    /// Wallet currency of the payment.
    pub currency: Option<&'a str>,
    /// Gross of the payments.
    pub gross_amount: Option<i128>,
    /// Fees of the payments.
    pub fee_amount: Option<i128>,
    /// Refunded so far (positive).
    pub refunded_amount: Option<i128>,
    /// Buyer's currency of a converted payment.
    pub original_currency: Option<&'a str>,
    /// Buyer's amount.
    pub original_amount: Option<i128>,
    /// Stored conversion rate.
    pub fx_rate: Option<i128>,
    /// Expected minus ledger, in the payment currency.
    pub difference_amount: Option<i128>,
    /// Human detail.
    pub detail: Option<&'a str>,
}

/// What reconcile tells `order_status` of one seller order (the seller's figures and the
/// result), applied by [`crate::orders::annotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatusRow<'a> {
    /// Account.
    pub account_id: &'a str,
    /// Business day of the order.
    pub business_date: i32,
    /// Marketplace order id.
    pub external_order_id: &'a str,
    /// Sales channel.
    pub channel: Option<&'a str>,
    /// The seller's currency.
    pub order_currency: &'a str,
    /// The seller's amount.
    pub order_amount: i128,
    /// The seller's order time.
    pub order_time: Option<i64>,
    /// `paid`, `refunded`, `partially_refunded`, `disputed` or `missing`.
    pub status: &'a str,
    /// Wallet currency of the payment.
    pub currency: Option<&'a str>,
    /// Gross paid.
    pub paid_amount: Option<i128>,
    /// Refunded (positive).
    pub refunded_amount: Option<i128>,
    /// Charged back (positive).
    pub disputed_amount: Option<i128>,
    /// The (first) payment.
    pub payment_transaction_id: Option<&'a str>,
    /// `created_at` of the order's last transaction.
    pub last_transaction_at: Option<i64>,
    /// `matched`, `amount_difference`, `ordered_not_paid`, …
    pub reconciliation: &'a str,
    /// The difference's classification.
    pub classification: Option<&'a str>,
    /// Expected minus ledger, in the payment currency.
    pub difference_amount: Option<i128>,
}

/// A row of `recon_portal`: a business day and currency of a portal export against the ledger,
/// or one difference (see [`super::tables::RECON_PORTAL`]). Unset fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalRow<'a> {
    /// Account.
    pub account_id: &'a str,
    /// Business day.
    pub business_date: i32,
    /// `day`, `transaction`, `total_row` or `summary_row`.
    pub scope: &'a str,
    /// Currency.
    pub currency: Option<&'a str>,
    /// Transaction (scope `transaction`).
    pub transaction_id: Option<&'a str>,
    /// `match`, `mismatch`, `missing_in_export`, `missing_in_api`, `amount_mismatch`, …
    pub result: &'a str,
    /// `none`, `rows`, `timing`, `quarantined` or `unexplained`.
    pub classification: &'a str,
    /// Whether the classification explains the result.
    pub explained: bool,
    /// Fields that differ, comma-separated.
    pub fields: Option<&'a str>,
    /// Their export values, `; `-separated.
    pub export_values: Option<&'a str>,
    /// Their ledger values, `; `-separated.
    pub api_values: Option<&'a str>,
    /// Rows the export counts (day and Summary rows).
    pub export_count: Option<i64>,
    /// Ledger transactions.
    pub api_count: Option<i64>,
    /// Export gross (a row's, or a day's, a total row's).
    pub export_gross_amount: Option<i128>,
    /// Ledger gross.
    pub api_gross_amount: Option<i128>,
    /// Export fee.
    pub export_fee_amount: Option<i128>,
    /// Ledger fee.
    pub api_fee_amount: Option<i128>,
    /// Export net.
    pub export_net_amount: Option<i128>,
    /// Ledger net.
    pub api_net_amount: Option<i128>,
    /// The export row's time, read in the account's zone.
    pub export_time: Option<i64>,
    /// The ledger's `created_at`.
    pub api_created_at: Option<i64>,
    /// The export's download time.
    pub downloaded_at: Option<i64>,
    /// The export's file name.
    pub export_file: Option<&'a str>,
    /// The row's number in its sheet.
    pub export_row: Option<i64>,
    /// Human detail.
    pub detail: Option<&'a str>,
}

impl<'a> StagedRow<'a> for OrderRow<'a> {
    fn partition(&self) -> (&str, i32) {
        (self.account_id, self.business_date)
    }
    fn encode(&self, e: &mut Enc<'_>) {
        e.str(self.account_id);
        e.i32(self.business_date);
        e.str(self.external_order_id);
        e.opt_str(self.channel);
        e.str(self.result);
        e.str(self.classification);
        e.flag(self.explained);
        e.opt_str(self.order_currency);
        e.opt_i128(self.order_amount);
        e.opt_i64(self.order_time);
        e.opt_str(self.transaction_id);
        e.opt_str(self.currency);
        e.opt_i128(self.gross_amount);
        e.opt_i128(self.fee_amount);
        e.opt_i128(self.refunded_amount);
        e.opt_str(self.original_currency);
        e.opt_i128(self.original_amount);
        e.opt_i128(self.fx_rate);
        e.opt_i128(self.difference_amount);
        e.opt_str(self.detail);
    }
    fn decode(d: &mut Dec<'a>) -> Self {
        OrderRow {
            account_id: d.str(),
            business_date: d.i32(),
            external_order_id: d.str(),
            channel: d.opt_str(),
            result: d.str(),
            classification: d.str(),
            explained: d.flag(),
            order_currency: d.opt_str(),
            order_amount: d.opt_i128(),
            order_time: d.opt_i64(),
            transaction_id: d.opt_str(),
            currency: d.opt_str(),
            gross_amount: d.opt_i128(),
            fee_amount: d.opt_i128(),
            refunded_amount: d.opt_i128(),
            original_currency: d.opt_str(),
            original_amount: d.opt_i128(),
            fx_rate: d.opt_i128(),
            difference_amount: d.opt_i128(),
            detail: d.opt_str(),
        }
    }
}

impl<'a> StagedRow<'a> for OrderStatusRow<'a> {
    fn partition(&self) -> (&str, i32) {
        (self.account_id, self.business_date)
    }
    fn encode(&self, e: &mut Enc<'_>) {
        e.str(self.account_id);
        e.i32(self.business_date);
        e.str(self.external_order_id);
        e.opt_str(self.channel);
        e.str(self.order_currency);
        e.i128(self.order_amount);
        e.opt_i64(self.order_time);
        e.str(self.status);
        e.opt_str(self.currency);
        e.opt_i128(self.paid_amount);
        e.opt_i128(self.refunded_amount);
        e.opt_i128(self.disputed_amount);
        e.opt_str(self.payment_transaction_id);
        e.opt_i64(self.last_transaction_at);
        e.str(self.reconciliation);
        e.opt_str(self.classification);
        e.opt_i128(self.difference_amount);
    }
    fn decode(d: &mut Dec<'a>) -> Self {
        OrderStatusRow {
            account_id: d.str(),
            business_date: d.i32(),
            external_order_id: d.str(),
            channel: d.opt_str(),
            order_currency: d.str(),
            order_amount: d.i128(),
            order_time: d.opt_i64(),
            status: d.str(),
            currency: d.opt_str(),
            paid_amount: d.opt_i128(),
            refunded_amount: d.opt_i128(),
            disputed_amount: d.opt_i128(),
            payment_transaction_id: d.opt_str(),
            last_transaction_at: d.opt_i64(),
            reconciliation: d.str(),
            classification: d.opt_str(),
            difference_amount: d.opt_i128(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_rows_read_back_equal() {
        let o = OrderRow {
            account_id: "ACC-1",
            business_date: 20_500,
            external_order_id: "#1001",
            channel: None,
            result: "amount_difference",
            classification: "fx_conversion",
            explained: true,
            order_currency: Some("EUR"),
            order_amount: Some(68_9700),
            order_time: Some(1_700_000_000_000_000),
            transaction_id: Some("TXN-1"),
            currency: Some("SGD"),
            gross_amount: Some(100_0000),
            fee_amount: Some(0),
            refunded_amount: None,
            original_currency: Some("EUR"),
            original_amount: Some(68_9700),
            fx_rate: Some(14_500_000_000),
            difference_amount: Some(-100),
            detail: Some("EUR → SGD"),
        };
        let s = OrderStatusRow {
            account_id: "ACC-2",
            business_date: 20_501,
            external_order_id: "113-1",
            channel: Some("AMAZON"),
            order_currency: "JPY",
            order_amount: 1500_0000,
            order_time: None,
            status: "missing",
            currency: None,
            paid_amount: None,
            refunded_amount: Some(5),
            disputed_amount: None,
            payment_transaction_id: None,
            last_transaction_at: Some(-1),
            reconciliation: "ordered_not_paid",
            classification: Some("unexplained"),
            difference_amount: None,
        };
        let mut b = Vec::new();
        o.encode(&mut Enc(&mut b));
        s.encode(&mut Enc(&mut b));
        let mut d = Dec::new(&b);
        assert_eq!(OrderRow::decode(&mut d), o);
        assert_eq!(OrderStatusRow::decode(&mut d), s);
        assert!(d.done());
        assert_eq!(o.partition(), ("ACC-1", 20_500));
    }
}
