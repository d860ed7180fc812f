//! Argument parsing with Redis' own error replies.

use bytes::Bytes;

use crate::crdt::number::{parse_f64, parse_i64};
use crate::crdt::Decimal;
use crate::resp::Frame;

/// `ERR value is not an integer or out of range`.
pub fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

/// `ERR value is not a valid float`.
pub fn not_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}

/// `ERR syntax error`.
pub fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}

/// An integer argument.
pub fn int(arg: &[u8]) -> Result<i64, Frame> {
    parse_i64(arg).ok_or_else(not_integer)
}

/// A non-negative integer argument (`what` names it in the error, as Redis does).
pub fn positive(arg: &[u8], what: &str) -> Result<u64, Frame> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(Frame::error(format!(
            "ERR {what} is out of range, must be positive"
        ))),
        None => Err(not_integer()),
    }
}

/// A float argument (scores, INCRBYFLOAT).
pub fn float(arg: &[u8]) -> Result<f64, Frame> {
    match parse_f64(arg) {
        // A number that overflows to infinity is out of range (strtod's
        // ERANGE), unlike a literal "inf".
        Some(v)
            if v.is_infinite()
                && !arg.to_ascii_lowercase().ends_with(b"inf")
                && !arg.to_ascii_lowercase().ends_with(b"infinity") =>
        {
            Err(not_float())
        }
        Some(v) => Ok(v),
        None => Err(not_float()),
    }
}

/// A finite decimal (INCRBYFLOAT, HINCRBYFLOAT).
pub fn decimal(arg: &[u8]) -> Result<Decimal, Frame> {
    Decimal::parse(arg).ok_or_else(not_float)
}

/// Whether `arg` equals `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Copies argument `i` (cheap: arguments are `Bytes`).
pub fn at(args: &[Bytes], i: usize) -> Bytes {
    args.get(i).cloned().unwrap_or_default()
}

/// Moves argument `i` out (empty when missing), leaving it empty. Why not
/// [`at`]: arguments share the connection's read buffer, whose reference
/// count every clone and drop updates, on a cache line the group-commit
/// thread updates too when it drops the operation's copy: moving the
/// argument into the operation costs neither. Only for arguments the
/// command no longer reads.
pub fn take(args: &mut [Bytes], i: usize) -> Bytes {
    args.get_mut(i).map(std::mem::take).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_rejects_overflow_but_takes_literal_infinity() {
        assert!(float(b"1e400").is_err());
        assert_eq!(float(b"+inf"), Ok(f64::INFINITY));
        assert_eq!(float(b"-infinity"), Ok(f64::NEG_INFINITY));
        assert_eq!(float(b"1.5"), Ok(1.5));
        assert!(float(b"nan").is_err());
    }
}
