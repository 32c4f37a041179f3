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

use es::{LmdbOptions, LmdbStore};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::poll::{CHOICES, OneBallotPerVoter, Rule, Tally};

const VOTERS: usize = 1000;
const THREADS: usize = 4;
const SEED: u64 = 2024;

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

    // A progress bar for the rebuild, drawn only for a person watching.
    let bar = if std::env::var_os("CI").is_some() || !std::io::stdout().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout())
    };
    bar.set_style(
        ProgressStyle::with_template("rebuilding {msg} [{bar:30}] {pos}/{len}")?
            .progress_chars("=> "),
    );
    bar.set_message("one_ballot_per_voter");
    let election = poll::run(store.clone(), &voters, THREADS, |p| {
        bar.set_length(p.head);
        bar.set_position(p.position);
    })?;
    bar.finish_and_clear();

    println!(
        "voted in {:.2?}: the poll recorded {} ballots ({:.0}/s; {} commands on one poll, \
         run one at a time)",
        election.voting_time,
        election.poll.ballots(),
        ballots as f64 / election.voting_time.as_secs_f64(),
        election.host.commands,
    );
    if let Some(why) = &election.late_ballot {
        println!("a ballot after the poll closed: refused ({why})");
    }
    // The rebuilt read model must equal one built from scratch with the new rule.
    let fresh = poll::replay(&*store, OneBallotPerVoter::new(election.rebuilt.rule()))?;
    println!(
        "one ballot per voter: the {} ballot counts now, not the {}; rebuilt from {} events{}",
        rule(election.rebuilt.rule()),
        rule(election.last.rule()),
        election.rebuilt_events,
        if fresh == election.rebuilt {
            ", equal to a fresh count"
        } else {
            ", DIFFERENT from a fresh count"
        }
    );

    let columns: [(&str, &str, Tally); 5] = [
        ("every", "ballot", election.every.tally()),
        ("last ballot", "per voter", election.last.tally()),
        ("last valid", "per voter", election.valid.tally()),
        ("first ballot", "per voter", election.rebuilt.tally()),
        ("first 100", "ballots*", election.first_100.clone()),
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
