//! A poll where counting is the interesting part.
//!
//! A thousand voters cast their ballots concurrently through a `Host`, on the embedded LMDB
//! store (in a fresh temporary directory, so every run counts the same ballots). About half of
//! them vote twice, and about a fifth write in a choice that is not on the poll: the poll
//! records all of it, and three projections over the same events count it three ways. Then the
//! rule of one of them changes (the first ballot counts instead of the last) and that read
//! model is rebuilt from the log.
//!
//! ```sh
//! cargo run --example voting
//! ```

// Written as a library module would be, so its `pub` items are not reachable from here.
#[allow(unreachable_pub)]
mod poll;

use std::error::Error;
use std::io::IsTerminal;
use std::sync::Arc;

use es::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::poll::{CHOICES, OneBallotPerVoter, Rule, Tally};

const VOTERS: usize = 1000;
const THREADS: usize = 4;
const SEED: u64 = 2024;

/// A bar on stdout for a rebuild up to position `head`, or a hidden one.
fn rebuild_bar(watched: bool, head: u64) -> ProgressBar {
    if !watched {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(head), ProgressDrawTarget::stdout());
    if let Ok(style) = ProgressStyle::with_template("rebuilding {msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("one_ballot_per_voter");
    bar
}

fn rule(rule: Rule) -> &'static str {
    match rule {
        Rule::First => "first",
        Rule::Last => "last",
    }
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let store = Arc::new(LmdbStore::temporary(LmdbOptions::new())?);
    let voters = poll::voters(VOTERS, SEED);
    let ballots: usize = voters.iter().map(|v| v.ballots.len()).sum();
    let twice = voters.iter().filter(|v| v.ballots.len() == 2).count();
    let invalid = voters
        .iter()
        .filter(|v| v.ballots.iter().any(|c| !poll::is_valid(c)))
        .count();
    println!(
        "{VOTERS} voters, {THREADS} threads, {ballots} ballots: {twice} voters vote twice, \
         {invalid} write in a choice not on the poll"
    );

    let voting = poll::vote(store.clone(), &voters, THREADS)?;
    println!(
        "voted in {:.2?}: the poll recorded {} ballots ({:.0}/s; {} commands on one poll, \
         run one at a time)",
        voting.time,
        voting.poll.ballots(),
        ballots as f64 / voting.time.as_secs_f64(),
        voting.host.commands,
    );
    if let Some(why) = &voting.late_ballot {
        println!("a ballot after the poll closed: refused ({why})");
    }

    // The rebuild draws a progress bar for a person watching, and nothing otherwise.
    let watched = std::env::var_os("CI").is_none() && std::io::stdout().is_terminal();
    let mut bar = None;
    let counts = poll::count(store.clone(), |p| {
        let bar = bar.get_or_insert_with(|| rebuild_bar(watched, p.head));
        bar.set_position(p.position);
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    // The rebuilt read model must equal one built from scratch with the new rule.
    let fresh = poll::replay(&*store, OneBallotPerVoter::new(counts.rebuilt.rule()))?;
    println!(
        "one ballot per voter: the {} ballot counts now, not the {}; rebuilt from {} events{}",
        rule(counts.rebuilt.rule()),
        rule(counts.last.rule()),
        counts.rebuilt_events,
        if fresh == counts.rebuilt {
            ", equal to a fresh count"
        } else {
            ", DIFFERENT from a fresh count"
        }
    );

    let columns: [(&str, &str, Tally); 5] = [
        ("every", "ballot", counts.every.tally()),
        ("last ballot", "per voter", counts.last.tally()),
        ("last valid", "per voter", counts.valid.tally()),
        ("first ballot", "per voter", counts.rebuilt.tally()),
        ("first 100", "ballots*", counts.first_100.clone()),
    ];
    println!();
    let titles: String = columns.iter().map(|c| format!("{:>14}", c.0)).collect();
    let subtitles: String = columns.iter().map(|c| format!("{:>14}", c.1)).collect();
    println!("{:<10}{titles}\n{:<10}{subtitles}", "", "");
    let row = |label: &str, count: &dyn Fn(&Tally) -> u64| {
        let cells: String = columns
            .iter()
            .map(|c| format!("{:>14}", count(&c.2)))
            .collect();
        println!("{label:<10}{cells}");
    };
    for choice in CHOICES {
        row(choice, &|t| t.get(choice));
    }
    row("invalid", &|t| t.invalid);
    row("total", &|t| t.total());
    println!("\n* which ballots come first depends on how the voting threads interleaved");
    Ok(())
}
