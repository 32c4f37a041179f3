//! A progress bar for migrations on a terminal (feature `progress`).
//!
//! The rule: drawn on standard error only when it is a terminal, so that logs, pipes and CI
//! runs get no control characters; finished (left showing its last state) when dropped.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;

/// A progress bar on standard error for a migration, hidden when standard error is not a
/// terminal. [`Migration::progress_bar`](super::Migration::progress_bar) draws one; a tool
/// that runs several steps can make its own and feed it from
/// [`Migration::progress`](super::Migration::progress).
#[derive(Debug)]
pub struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    /// A bar labelled `label`, shown only if standard error is a terminal.
    pub fn new(label: &str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} events ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        TerminalProgress { bar }
    }

    /// Whether the bar is drawn (standard error is a terminal).
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Shows `progress`.
    pub fn update(&mut self, progress: Progress) {
        self.bar.set_length(progress.total);
        self.bar.set_position(progress.read);
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        self.bar.finish();
    }
}
