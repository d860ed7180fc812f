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
    parse_f64(arg).ok_or_else(not_float)
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
