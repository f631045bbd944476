//! Page tokens (§4): opaque, tamper-proof (HMAC-SHA256), bound to the query they came from and
//! to the caller's key, and expiring.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::query::SortKey;
use crate::contract::signing::hmac_sha256_hex;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// After this (time, primary key).
    After(SortKey),
    /// At this offset of a fixed list.
    Offset(u64),
}

/// The decoded content of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// When it was issued (real time, ms).
    pub issued_ms: i64,
    /// Hash of the query (every parameter but `page_token`) and the access key.
    pub binding: u64,
    /// The resume position.
    pub position: Position,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Undecodable, forged, or bound to another query.
    Invalid,
    /// Older than the time to live.
    Expired,
}

/// Issues and checks tokens with a server-side key.
#[derive(Debug, Clone)]
pub struct TokenCodec {
    key: [u8; 32],
    ttl_ms: i64,
}

impl TokenCodec {
    /// A codec with a key and a time to live.
    pub fn new(key: [u8; 32], ttl_ms: i64) -> TokenCodec {
        TokenCodec { key, ttl_ms }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let hex = hmac_sha256_hex(&self.key, payload);
        hex::decode(&hex[..MAC_LEN * 2]).expect("hex from hmac")
    }

    /// Encodes a token.
    pub fn encode(&self, t: &Token) -> String {
        let mut p = Vec::with_capacity(64);
        p.push(VERSION);
        p.extend_from_slice(&t.issued_ms.to_be_bytes());
        p.extend_from_slice(&t.binding.to_be_bytes());
        match &t.position {
            Position::After((ms, id)) => {
                p.push(1);
                p.extend_from_slice(&ms.to_be_bytes());
                p.extend_from_slice(id.as_bytes());
            }
            Position::Offset(o) => {
                p.push(2);
                p.extend_from_slice(&o.to_be_bytes());
            }
        }
        let mac = self.mac(&p);
        p.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(p)
    }

    /// The position of an authentic token, without checking its binding or age.
    pub fn peek_position(&self, s: &str) -> Option<Position> {
        self.decode_inner(s).ok().map(|t| t.position)
    }

    /// Decodes and checks a token for the query `binding` at real time `now_ms`.
    pub fn decode(&self, s: &str, binding: u64, now_ms: i64) -> Result<Token, TokenError> {
        let t = self.decode_inner(s)?;
        if t.binding != binding {
            return Err(TokenError::Invalid);
        }
        if now_ms - t.issued_ms > self.ttl_ms {
            return Err(TokenError::Expired);
        }
        Ok(t)
    }

    fn decode_inner(&self, s: &str) -> Result<Token, TokenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .map_err(|_| TokenError::Invalid)?;
        if raw.len() < 1 + 8 + 8 + 1 + 8 + MAC_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload, mac) = raw.split_at(raw.len() - MAC_LEN);
        let want = self.mac(payload);
        // Constant-time comparison of the tag.
        if want.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return Err(TokenError::Invalid);
        }
        if payload[0] != VERSION {
            return Err(TokenError::Invalid);
        }
        let num = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        let position = match payload[17] {
            1 => Position::After((
                num(18) as i64,
                String::from_utf8(payload[26..].to_vec()).map_err(|_| TokenError::Invalid)?,
            )),
            2 if payload.len() == 26 => Position::Offset(num(18)),
            _ => return Err(TokenError::Invalid),
        };
        Ok(Token {
            issued_ms: num(1) as i64,
            binding: num(9),
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_forgery_binding_expiry() {
        let c = TokenCodec::new([7; 32], 600_000);
        let t = Token {
            issued_ms: 1_000_000,
            binding: 42,
            position: Position::After((123, "TXN-1".into())),
        };
        let s = c.encode(&t);
        assert_eq!(c.decode(&s, 42, 1_000_500), Ok(t));
        assert_eq!(c.decode(&s, 43, 1_000_500), Err(TokenError::Invalid));
        assert_eq!(c.decode(&s, 42, 1_700_000), Err(TokenError::Expired));
        let mut forged = s.clone().into_bytes();
        let k = forged.len() / 2;
        forged[k] = if forged[k] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            c.decode(std::str::from_utf8(&forged).unwrap(), 42, 1_000_500),
            Err(TokenError::Invalid)
        );
        assert_eq!(c.decode("not a token", 42, 0), Err(TokenError::Invalid));
        let other = TokenCodec::new([8; 32], 600_000);
        assert_eq!(other.decode(&s, 42, 1_000_500), Err(TokenError::Invalid));
    }
}
