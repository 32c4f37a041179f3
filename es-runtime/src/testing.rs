//! Helpers for tests: given/when/then for aggregates, and the store conformance suite.
//! Compiled with the `testing` feature only (enable it for dev-dependencies).
//!
//! ```
//! use es_runtime::Aggregate;
//! use es_runtime::testing::AggregateTest;
//! # use es_runtime::DomainEvent;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Default, Serialize, Deserialize)]
//! # struct Counter { value: u64 }
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # enum CounterEvent { Incremented { by: u64 } }
//! # impl DomainEvent for CounterEvent {
//! #     const TYPES: &'static [&'static str] = &["Incremented"];
//! #     fn event_type(&self) -> &'static str { "Incremented" }
//! # }
//! # #[derive(Debug, PartialEq, thiserror::Error)]
//! # #[error("zero")] struct Zero;
//! # impl Aggregate for Counter {
//! #     const NAME: &'static str = "counter";
//! #     type Command = u64;
//! #     type Event = CounterEvent;
//! #     type Error = Zero;
//! #     fn handle(&self, by: u64) -> Result<Vec<CounterEvent>, Zero> {
//! #         if by == 0 { return Err(Zero) }
//! #         Ok(vec![CounterEvent::Incremented { by }])
//! #     }
//! #     fn apply(&mut self, event: CounterEvent) {
//! #         match event { CounterEvent::Incremented { by } => self.value += by }
//! #     }
//! # }
//! AggregateTest::<Counter>::given([CounterEvent::Incremented { by: 1 }])
//!     .when(2)
//!     .then([CounterEvent::Incremented { by: 2 }]);
//!
//! AggregateTest::<Counter>::given_no_events().when(0).then_error(Zero);
//! ```

pub mod conformance;

use std::fmt::Debug;

use crate::aggregate::Aggregate;

/// A given/when/then test of one aggregate, without a store.
#[derive(Debug)]
pub struct AggregateTest<A: Aggregate> {
    state: A,
    version: u64,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from the state these events build.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        let mut version = 0;
        for e in events {
            state.apply(e);
            version += 1;
        }
        AggregateTest { state, version }
    }

    /// Starts from a new aggregate.
    pub fn given_no_events() -> Self {
        Self::given([])
    }

    /// Starts from a state built some other way.
    pub fn given_state(state: A) -> Self {
        AggregateTest { state, version: 0 }
    }

    /// The state built so far.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// How many events were given.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Handles a command against the given state, as the host does (through
    /// [`Aggregate::handle_with`]).
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let mut events = Vec::new();
        let result = self
            .state
            .handle_with(command, &mut |e| events.push(e))
            .map(|()| events);
        Outcome {
            state: self.state,
            result,
        }
    }
}

/// What a command did in an [`AggregateTest`].
#[derive(Debug)]
#[must_use = "check the outcome with `then`, `then_error` or `then_error_matches`"]
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Outcome<A> {
    /// Asserts the command emitted exactly these events, and returns the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "the command emitted other events than expected"
                );
                let mut state = self.state;
                for e in events {
                    state.apply(e);
                }
                state
            }
            Err(e) => panic!("expected events {expected:?}, but the command failed: {e:?}"),
        }
    }

    /// Asserts the command emitted no events.
    #[track_caller]
    pub fn then_nothing(self) -> A
    where
        A::Event: PartialEq,
    {
        self.then([])
    }

    /// Asserts the command failed with this error.
    #[track_caller]
    pub fn then_error(self, expected: A::Error)
    where
        A::Error: PartialEq,
    {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, but the command emitted {events:?}"),
            Err(e) => assert_eq!(e, expected, "the command failed with another error"),
        }
    }

    /// Asserts the command failed with an error for which `check` holds.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&A::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, but the command emitted {events:?}"),
            Err(e) => assert!(
                check(&e),
                "the command failed with an unexpected error: {e:?}"
            ),
        }
    }

    /// The raw result, for assertions of your own.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
