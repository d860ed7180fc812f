//! Numbers as Redis writes them, with sums that are exact.
//!
//! Concurrent increments are summed in whatever order they arrive, so the sum
//! must not depend on order: integers are summed in `i128`, fractional deltas
//! as exact decimals. Rounding happens only when a value is shown.

use bigdecimal::{BigDecimal, Zero};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::codec::{self, DecodeError, Reader};

/// Digits after the decimal point shown for fractional results, as Redis'
/// `INCRBYFLOAT` (`%.17Lf`).
const SHOWN_FRACTION_DIGITS: i64 = 17;
/// Longest float argument taken digit for digit (longer ones go through f64).
const MAX_EXACT_INPUT: usize = 40;

/// An exact decimal. Built only from finite numbers: a short argument digit
/// for digit, anything else by its `f64`'s shortest round-trip form. So it
/// has at most 40 significant digits and an exponent inside the `f64` range:
/// sums of them stay small.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal(BigDecimal);

impl Decimal {
    /// Zero.
    pub fn zero() -> Self {
        Decimal(BigDecimal::zero())
    }

    /// The exact decimal of a finite float's shortest round-trip form
    /// (`0.1` stays `0.1`); `None` for NaN and infinities.
    pub fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() {
            return None;
        }
        if v == 0.0 {
            return Some(Decimal::zero());
        }
        let shortest = format!("{v:e}");
        BigDecimal::from_str(&shortest)
            .ok()
            .map(|d| Decimal(d.normalized()))
    }

    /// Parses a client's float argument the way Redis accepts it: a finite
    /// number (no `nan`, no `inf`), no spaces.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let v = parse_f64(bytes)?;
        if v != 0.0 && v.is_finite() && bytes.len() <= MAX_EXACT_INPUT {
            // Short inputs are taken exactly (as Redis' long double keeps
            // 9223372036854775807 exact); the f64 check bounds the exponent.
            if let Some(d) = std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| BigDecimal::from_str(s).ok())
            {
                return Some(Decimal(d.normalized()));
            }
        }
        Decimal::from_f64(v)
    }

    /// Parses the canonical text form written by [`Display`](fmt::Display)
    /// (used by the codecs). Rejects anything that is not such a number.
    pub fn from_canonical(s: &str) -> Option<Self> {
        // Bound the work a hostile encoded value can cause before parsing.
        if s.len() > 400 {
            return None;
        }
        let v: f64 = s.parse().ok()?;
        if !v.is_finite() {
            return None;
        }
        BigDecimal::from_str(s)
            .ok()
            .map(|d| Decimal(d.normalized()))
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Exact sum.
    pub fn add(&self, other: &Decimal) -> Decimal {
        Decimal((&self.0 + &other.0).normalized())
    }

    /// Nearest `f64` (correctly rounded by the standard parser).
    pub fn to_f64(&self) -> f64 {
        self.0.to_string().parse().unwrap_or(0.0)
    }

    /// Rendered as Redis renders `INCRBYFLOAT` results: fixed notation, at
    /// most 17 digits after the point, no trailing zeros.
    pub fn to_redis_string(&self) -> String {
        if self.0.is_zero() {
            return "0".to_string();
        }
        // Redis prints `%.17Lf`: 17 digits after the point, then trims zeros.
        let rounded = self
            .0
            .with_scale_round(SHOWN_FRACTION_DIGITS, bigdecimal::RoundingMode::HalfEven);
        let s = rounded.to_plain_string();
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s == "-0" {
            "0".to_string()
        } else {
            s
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Canonical exact form (normalized, scientific when that is shorter).
        write!(f, "{}", self.0)
    }
}

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Decimal::from_canonical(&s).ok_or_else(|| serde::de::Error::custom("invalid decimal"))
    }
}

/// Parses a Redis integer argument exactly as Redis does (`string2ll`):
/// optional `-`, no `+`, no leading zeros, no spaces, fits in `i64`.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (neg, digits) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: i128 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i128::from(b - b'0');
    }
    if neg {
        v = -v;
    }
    i64::try_from(v).ok()
}

/// Parses a Redis float argument: what `strtod` takes, minus NaN, and with
/// no surrounding spaces. Infinities are returned (sorted-set scores allow them).
pub fn parse_f64(bytes: &[u8]) -> Option<f64> {
    if bytes.is_empty() || bytes.len() > 5000 {
        return None;
    }
    let s = std::str::from_utf8(bytes).ok()?;
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        _ => s.parse::<f64>().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Formats a score as Redis 7 does: shortest round-trip form, `inf`/`-inf`.
pub fn format_f64(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == v.trunc() && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    let s = format!("{v}");
    if s.len() > 24 {
        format!("{v:e}")
    } else {
        s
    }
}

/// One increment: integer (INCRBY family) or fractional (INCRBYFLOAT family).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Delta {
    /// An integer increment.
    Int(i64),
    /// A fractional increment, exact.
    Float(Decimal),
}

/// An exact running sum of increments. `fractional` records whether any
/// fractional increment took part, which decides how the result is shown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sum {
    int: i128,
    frac: Decimal,
    fractional: bool,
}

impl Sum {
    /// Adds one increment; order never matters.
    pub fn add(&mut self, d: &Delta) {
        match d {
            Delta::Int(i) => self.int = self.int.saturating_add(i128::from(*i)),
            Delta::Float(x) => {
                self.frac = self.frac.add(x);
                self.fractional = true;
            }
        }
    }

    /// Adds another sum.
    pub fn add_sum(&mut self, other: &Sum) {
        self.int = self.int.saturating_add(other.int);
        self.frac = self.frac.add(&other.frac);
        self.fractional |= other.fractional;
    }

    /// Whether any fractional increment took part.
    pub fn is_fractional(&self) -> bool {
        self.fractional
    }

    /// The exact total as a decimal.
    pub fn total(&self) -> Decimal {
        self.frac.add(&Decimal(BigDecimal::from(self.int)))
    }

    /// The integer part (meaningful when not fractional).
    pub fn int(&self) -> i128 {
        self.int
    }

    /// Appends the snapshot encoding (`storage-format.md`, "Snapshots"): a
    /// flags byte (bit 0 fractional, bit 1 wide integer part), the integer
    /// part (`zigzag`, or 16 bytes little-endian when it does not fit `i64`),
    /// then the fractional part as a `decimal` when bit 0 is set. Kept exact
    /// rather than rounded, because later increments add to it.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let narrow = i64::try_from(self.int).ok();
        let mut flags = 0;
        if self.fractional {
            flags |= SUM_FRACTIONAL;
        }
        if narrow.is_none() {
            flags |= SUM_WIDE;
        }
        out.push(flags);
        match narrow {
            Some(i) => codec::put_zigzag(out, i),
            None => out.extend_from_slice(&self.int.to_le_bytes()),
        }
        if self.fractional {
            codec::put_decimal(out, &self.frac);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.pos();
        let flags = r.byte("sum flags")?;
        if flags & !(SUM_FRACTIONAL | SUM_WIDE) != 0 {
            return Err(DecodeError::UnknownTag {
                offset,
                what: "sum flags",
                found: flags,
            });
        }
        let int = if flags & SUM_WIDE != 0 {
            let at = r.pos();
            let raw: [u8; 16] =
                r.take(16, "wide sum")?
                    .try_into()
                    .map_err(|_| DecodeError::Truncated {
                        offset: at,
                        what: "wide sum",
                    })?;
            let v = i128::from_le_bytes(raw);
            if i64::try_from(v).is_ok() {
                return Err(DecodeError::NonCanonical {
                    offset: at,
                    what: "wide sum that fits 64 bits",
                });
            }
            v
        } else {
            i128::from(r.zigzag("sum")?)
        };
        let fractional = flags & SUM_FRACTIONAL != 0;
        let frac = if fractional {
            r.decimal()?
        } else {
            Decimal::default()
        };
        Ok(Sum {
            int,
            frac,
            fractional,
        })
    }
}

/// Sum flags: a fractional increment took part.
const SUM_FRACTIONAL: u8 = 0x01;
/// Sum flags: the integer part is written as 16 bytes.
const SUM_WIDE: u8 = 0x02;

/// The decimal text of `n`. Every INCR formats its counter a few times
/// (prepare, digest, reply): `itoa` is several times faster than `i128`'s
/// `Display`.
fn int_bytes(n: i128) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// The integer a base plus integer increments add up to, when both are
/// integers: what [`add_to_base`] shows then, without formatting it.
pub fn int_total(base: Option<&[u8]>, sum: &Sum) -> Option<i128> {
    if sum.is_fractional() {
        return None;
    }
    let b = parse_i64(base.unwrap_or(b"0"))?;
    Some(i128::from(b).saturating_add(sum.int()))
}

/// What a string (or hash field) holds once unseen increments are added to its
/// base: the bytes to show, and whether increments had to be dropped because
/// the base is not a number.
pub fn add_to_base(base: Option<&[u8]>, sum: &Sum) -> (Vec<u8>, bool) {
    if let Some(total) = int_total(base, sum) {
        return (int_bytes(total), false);
    }
    let base_bytes = base.unwrap_or(b"0");
    match Decimal::parse(base_bytes) {
        Some(b) => (b.add(&sum.total()).to_redis_string().into_bytes(), false),
        None => (base_bytes.to_vec(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_bytes_matches_display() {
        for n in [
            0i128,
            1,
            -1,
            9,
            10,
            -10,
            12345,
            i64::MAX as i128,
            i64::MIN as i128,
        ]
        .into_iter()
        .chain([i128::MAX, i128::MIN, i128::from(u64::MAX) + 7])
        {
            assert_eq!(int_bytes(n), n.to_string().into_bytes());
        }
    }

    #[test]
    fn parse_i64_is_strict_like_redis() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"-",
            b"abc",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn decimal_sum_is_exact_and_shown_like_redis() {
        let a = Decimal::parse(b"0.1").unwrap();
        let b = Decimal::parse(b"0.2").unwrap();
        assert_eq!(a.add(&b).to_redis_string(), "0.3");
        assert_eq!(Decimal::parse(b"10.50").unwrap().to_redis_string(), "10.5");
        assert_eq!(Decimal::parse(b"1e3").unwrap().to_redis_string(), "1000");
        assert_eq!(Decimal::parse(b"-2.5").unwrap().to_redis_string(), "-2.5");
        let big = Decimal::parse(b"9223372036854775807").unwrap();
        let one = Decimal::parse(b"1").unwrap();
        // Exact like Redis' long double here, not rounded to 17 significant digits.
        assert_eq!(big.add(&one).to_redis_string(), "9223372036854775808");
        assert!(Decimal::parse(b"nan").is_none());
        assert!(Decimal::parse(b"inf").is_none());
        assert!(Decimal::parse(b"1e999").is_none());
    }

    #[test]
    fn canonical_form_round_trips() {
        for s in ["0.1", "-3", "1e300", "1.5e-300", "123456789.123"] {
            let d = Decimal::parse(s.as_bytes()).unwrap();
            assert_eq!(
                Decimal::from_canonical(&d.to_string()),
                Some(d.clone()),
                "{s}"
            );
        }
    }

    #[test]
    fn sum_does_not_depend_on_order() {
        let deltas = [
            Delta::Float(Decimal::parse(b"1e300").unwrap()),
            Delta::Int(3),
            Delta::Float(Decimal::parse(b"1e-300").unwrap()),
            Delta::Float(Decimal::parse(b"-1e300").unwrap()),
        ];
        let mut fwd = Sum::default();
        deltas.iter().for_each(|d| fwd.add(d));
        let mut back = Sum::default();
        deltas.iter().rev().for_each(|d| back.add(d));
        assert_eq!(fwd.total(), back.total());
        assert_eq!(fwd.total().to_redis_string(), "3");
    }

    #[test]
    fn base_plus_increments() {
        let mut s = Sum::default();
        s.add(&Delta::Int(5));
        assert_eq!(add_to_base(Some(b"10"), &s), (b"15".to_vec(), false));
        assert_eq!(add_to_base(None, &s), (b"5".to_vec(), false));
        assert_eq!(add_to_base(Some(b"1.5"), &s), (b"6.5".to_vec(), false));
        assert_eq!(add_to_base(Some(b"abc"), &s), (b"abc".to_vec(), true));
        let mut big = Sum::default();
        big.add(&Delta::Int(i64::MAX));
        big.add(&Delta::Int(i64::MAX));
        assert_eq!(add_to_base(None, &big).0, b"18446744073709551614".to_vec());
    }

    #[test]
    fn scores_format_like_redis() {
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(3.1), "3.1");
        assert_eq!(format_f64(f64::INFINITY), "inf");
        assert_eq!(format_f64(-0.5), "-0.5");
    }
}
