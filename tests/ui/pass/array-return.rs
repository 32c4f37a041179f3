//! A command that always emits a fixed number of events: `[Event; N]`.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Match {
    started: bool,
    players: Vec<String>,
}

#[aggregate]
impl Match {
    #[command]
    fn start(&self, home: String, away: String) -> [MatchEvent; 3] {
        [
            MatchEvent::Joined { player: home },
            MatchEvent::Joined { player: away },
            MatchEvent::Started,
        ]
    }

    #[event]
    fn joined(&mut self, player: String) {
        self.players.push(player);
    }

    #[event]
    fn started(&mut self) {
        self.started = true;
    }
}

fn main() {
    let mut m = Match::default();
    let events = m
        .handle(MatchCommand::Start { home: "a".into(), away: "b".into() })
        .unwrap();
    assert_eq!(events.len(), 3);
    events.into_iter().for_each(|e| m.apply(e));
    assert!(m.started);
    assert_eq!(m.players, ["a", "b"]);
}
