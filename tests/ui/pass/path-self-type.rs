//! The aggregate named by a path in the impl header, from another module.
mod model {
    use es::prelude::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Score {
        pub points: u32,
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Other;
}

mod handlers {
    use es::prelude::*;

    /// Scores points.
    #[aggregate]
    impl crate::model::Score {
        #[command]
        fn score(&self, points: u32) -> ScoreEvent {
            ScoreEvent::Scored { points }
        }

        #[event]
        fn scored(&mut self, points: u32) {
            self.points += points;
        }
    }
}

use es::Aggregate;

fn main() {
    let mut s = model::Score::default();
    for e in s.handle(handlers::ScoreCommand::Score { points: 3 }).unwrap() {
        s.apply(e);
    }
    assert_eq!(s.points, 3);
    assert_eq!(model::Score::NAME, "score");
    let _ = model::Other;
}
