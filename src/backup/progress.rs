//! Progress bars for long copies and checks (on stderr, only on a terminal,
//! only for large files).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;

/// Files smaller than this get no bar: they take well under a second.
const MIN_BYTES: u64 = 16 << 20;

/// A byte-count bar labelled `what`, hidden for small work or when
/// progress is off (indicatif also hides it when stderr is not a terminal).
pub(crate) fn bytes_bar(progress: Progress, total: u64, what: &str) -> ProgressBar {
    if progress == Progress::Hidden || total < MIN_BYTES {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:<14} [{bar:32}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}
