//! Text for the page: HTML escaping of every value (API text included) and numbers formatted
//! from exact decimals — amounts with their currency's digits and thousands separators.

use crate::contract::money::fmt_amount;

/// `s` safe in HTML text and in a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                out.push_str(&format!("&#x{:x};", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out
}

/// An amount (warehouse units) as plain decimal text with the currency's digits: the value the
/// page carries in `data-value` (`-1234.50`).
pub fn plain(units4: i128, currency: &str) -> String {
    fmt_amount(units4, currency)
}

/// An amount for reading: thousands separators and a minus sign (`−1,234.50`).
pub fn amount(units4: i128, currency: &str) -> String {
    grouped(&plain(units4, currency))
}

/// A percentage stored in warehouse units with two decimals (`2.90 %` is `29_000`).
pub fn percent(units4: i128) -> String {
    format!(
        "{} %",
        grouped(&crate::contract::money::format_decimal(units4, 4, 2))
    )
}

/// The plain text of a percentage (`2.90`).
pub fn percent_plain(units4: i128) -> String {
    crate::contract::money::format_decimal(units4, 4, 2)
}

/// A whole number with thousands separators.
pub fn count(n: u64) -> String {
    grouped(&n.to_string())
}

/// Decimal text with thousands separators in its integer part and `−` for a minus.
fn grouped(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(d) => ("\u{2212}", d),
        None => ("", text),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut out = String::from(sign);
    for (k, c) in int.chars().enumerate() {
        if k > 0 && (int.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_groups() {
        assert_eq!(
            esc("<b onclick='x'>&\"\u{1b}"),
            "&lt;b onclick=&#39;x&#39;&gt;&amp;&quot;&#x1b;"
        );
        assert_eq!(amount(-12_345_678_900, "USD"), "\u{2212}1,234,567.89");
        assert_eq!(amount(1_500_000_000, "JPY"), "150,000");
        assert_eq!(amount(1_234, "KWD"), "0.1234");
        assert_eq!(plain(-123_000, "USD"), "-12.30");
        assert_eq!(percent(29_000), "2.90 %");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
