//! The event body of §8 and the checks a well-signed body must still pass. Which pull an event
//! asks for comes from the registry: `statement.ready` names a day of one account's statement;
//! any other event type that is a stream's `change_event` asks for a pull of that stream for the
//! account in `data.account_id`.

use chrono::NaiveDate;
use serde::Deserialize;

use super::actions::Action;
use crate::registry::Stream;

/// `statement.ready`: a daily reconciliation file can be fetched.
pub const STATEMENT_READY: &str = "statement.ready";

/// Why a (well-signed) body is not an event this receiver can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not JSON, or not an object with the §8 fields. Carries serde's message, which names a
    /// position, never the payload.
    #[error("body is not a §8 event: {0}")]
    Malformed(String),
    /// `MB-Webhook-Id` differs from the body's `event_id`.
    #[error("MB-Webhook-Id does not match the body's event_id")]
    IdMismatch,
    /// A known event type without a field it needs.
    #[error("{event_type} event without a valid data.{field}")]
    MissingField {
        /// The event type.
        event_type: &'static str,
        /// The missing or invalid field.
        field: &'static str,
    },
}

/// One webhook event as sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// `evt_…`, unique per event; repeated on redelivery.
    pub event_id: String,
    /// `statement.ready`, `settlement.paid`, `transaction.updated`, `dispute.updated`,
    /// `payout.updated`; new types may be added.
    pub event_type: String,
    /// When MariBank created the event (RFC 3339 text as sent).
    pub created_at: String,
    /// Type-specific fields.
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// Parses a raw body and checks it against the `MB-Webhook-Id` header.
    pub fn parse(body: &[u8], header_id: &str) -> Result<Event, EventError> {
        let ev: Event = serde_json::from_slice(body).map_err(|e| {
            // Not `e.to_string()`: serde's message can quote a value from the payload.
            EventError::Malformed(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if ev.event_id.is_empty() {
            return Err(EventError::Malformed("event_id is empty".into()));
        }
        if ev.event_id != header_id {
            return Err(EventError::IdMismatch);
        }
        ev.action()?;
        Ok(ev)
    }

    fn text(&self, event_type: &'static str, field: &'static str) -> Result<&str, EventError> {
        self.data
            .get(field)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(EventError::MissingField { event_type, field })
    }

    /// The pull this event asks for; `None` for a type this receiver does not know (it is
    /// recorded and acknowledged, nothing more). A change event must name its account and the
    /// record that changed (the stream's primary key field).
    pub fn action(&self) -> Result<Option<Action>, EventError> {
        if self.event_type == STATEMENT_READY {
            let t = STATEMENT_READY;
            let date = self.text(t, "date")?;
            return Ok(Some(Action::Statement {
                account_id: self.text(t, "account_id")?.to_string(),
                date: NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                    EventError::MissingField {
                        event_type: t,
                        field: "date",
                    }
                })?,
            }));
        }
        let Some(stream) = Stream::by_change_event(&self.event_type) else {
            return Ok(None);
        };
        let t = stream.change_event.expect("found by its change event");
        if let [key] = stream.primary_key {
            self.text(t, key)?;
        }
        Ok(Some(Action::Refresh {
            account_id: self.text(t, "account_id")?.to_string(),
            stream,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example_and_maps_actions() {
        let body = br#"{"event_id":"evt_0001","event_type":"statement.ready","created_at":"2026-11-25T02:00:00.000Z","data":{"account_id":"ACC-SG-0001","date":"2026-11-24"}}"#;
        let ev = Event::parse(body, "evt_0001").unwrap();
        assert_eq!(
            ev.action().unwrap(),
            Some(Action::Statement {
                account_id: "ACC-SG-0001".into(),
                date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
            })
        );
        assert_eq!(
            Event::parse(body, "evt_0002").unwrap_err(),
            EventError::IdMismatch
        );
        let unknown =
            br#"{"event_id":"e","event_type":"payout.created","created_at":"x","data":{}}"#;
        assert_eq!(Event::parse(unknown, "e").unwrap().action().unwrap(), None);
        let missing = br#"{"event_id":"e","event_type":"settlement.paid","created_at":"x","data":{"account_id":"A"}}"#;
        assert!(matches!(
            Event::parse(missing, "e"),
            Err(EventError::MissingField {
                field: "settlement_batch_id",
                ..
            })
        ));
        // Change events map to pulls of their stream, through the registry.
        for (event_type, key, stream) in [
            (
                "transaction.updated",
                "transaction_id",
                Stream::TRANSACTIONS,
            ),
            (
                "settlement.paid",
                "settlement_batch_id",
                Stream::SETTLEMENTS,
            ),
            ("dispute.updated", "dispute_id", Stream::DISPUTES),
            ("payout.updated", "payout_id", Stream::PAYOUTS),
        ] {
            let body = serde_json::json!({"event_id": "e", "event_type": event_type,
                "created_at": "x", "data": {"account_id": "ACC-SG-0001", key: "K", "status": "PAID"}});
            let ev = Event::parse(body.to_string().as_bytes(), "e").unwrap();
            assert_eq!(
                ev.action().unwrap(),
                Some(Action::Refresh {
                    account_id: "ACC-SG-0001".into(),
                    stream
                })
            );
        }
        let no_account = br#"{"event_id":"e","event_type":"dispute.updated","created_at":"x","data":{"dispute_id":"D"}}"#;
        assert!(matches!(
            Event::parse(no_account, "e"),
            Err(EventError::MissingField {
                event_type: "dispute.updated",
                field: "account_id"
            })
        ));
        assert!(matches!(
            Event::parse(b"{not json", "e"),
            Err(EventError::Malformed(_))
        ));
    }
}
