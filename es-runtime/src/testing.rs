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
//! #     type Services = ();
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

use std::any::Any;
use std::fmt::{self, Debug, Write as _};
use std::marker::PhantomData;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::codec;
use crate::error::DecodeError;

/// A given/when/then test of one aggregate, without a store.
///
/// An aggregate whose commands consult services (see [`Aggregate::Services`]) is given them
/// with [`with_services`](Self::with_services) before [`when`](Self::when).
pub struct AggregateTest<A: Aggregate> {
    state: A,
    version: u64,
    services: Option<A::Services>,
}

impl<A: Aggregate + Debug> Debug for AggregateTest<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateTest")
            .field("state", &self.state)
            .field("version", &self.version)
            .field("services", &self.services.as_ref().map(|_| ".."))
            .finish()
    }
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
        AggregateTest {
            state,
            version,
            services: None,
        }
    }

    /// Starts from a new aggregate.
    pub fn given_no_events() -> Self {
        Self::given([])
    }

    /// Starts from a state built some other way.
    pub fn given_state(state: A) -> Self {
        AggregateTest {
            state,
            version: 0,
            services: None,
        }
    }

    /// Starts a statement about stored payloads: this one, of type `event_type` stored at
    /// shape `version`, with its fields as JSON. See [`StoredEvents`].
    pub fn stored(event_type: &str, version: u32, fields: serde_json::Value) -> StoredEvents<A> {
        StoredEvents::new().stored(event_type, version, fields)
    }

    /// The services the command consults, as the host would pass them.
    pub fn with_services(mut self, services: A::Services) -> Self {
        self.services = Some(services);
        self
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
    /// [`Aggregate::handle_with_services`]).
    ///
    /// # Panics
    ///
    /// When the aggregate's commands consult services and none were given.
    #[track_caller]
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let services = match self.services {
            Some(services) => services,
            None => no_services::<A::Services>().unwrap_or_else(|| {
                panic!(
                    "the commands of `{}` consult services: give them with \
                     `AggregateTest::with_services` before `when`",
                    std::any::type_name::<A>()
                )
            }),
        };
        let mut events = Vec::new();
        let result = self
            .state
            .handle_with_services(command, &services, &mut |e| events.push(e))
            .map(|()| events);
        Outcome {
            state: self.state,
            result,
        }
    }
}

/// `()` as `T`, when `T` is `()`: the services of an aggregate that consults none.
fn no_services<T: Any>() -> Option<T> {
    let unit: Box<dyn Any> = Box::new(());
    unit.downcast::<T>().ok().map(|b| *b)
}

/// Stored payloads of an aggregate's events, as JSON, each with its type name and the version
/// of its shape, and what they read as now: the statement that old events still read as the
/// current ones.
///
/// Each payload is encoded as the store holds it and read exactly as every reader reads it
/// (through [`DomainEvent::decode_stored`], so a past shape goes through its upcast), under a
/// stream of the aggregate, version after version.
///
/// The JSON is the event's fields (`{"amount": 5}`), as [`codec::to_json`] shows them inside
/// the payload's `{"Type": ...}`; `null` stands for an event without fields. Write the fields
/// of the past shape as its upcast takes them: for `#[upcast(from = "Opened", version = 1)]
/// fn opened_v1(name: String, initial: u64)`, `stored("Opened", 1, json!({"name": "Ada",
/// "initial": 10}))`. The `#[aggregate]` documentation ("Versions and upcasts", "Step by
/// step") has a chain of versions tested this way.
///
/// Here a counter whose `Incremented` is at version 2 (field `by`), reading version 1 (whose
/// field was `up`) through a hand-written upcast, as `#[aggregate]` would generate:
///
/// ```
/// # use es_runtime::{Aggregate, DomainEvent};
/// # use serde::{Deserialize, Serialize};
/// use es_runtime::testing::AggregateTest;
/// use serde_json::json;
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # struct Counter { value: u64 }
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # enum CounterEvent { Incremented { by: u64 } }
/// # #[derive(Deserialize)]
/// # enum V1 { Incremented { up: u64 } }
/// # impl DomainEvent for CounterEvent {
/// #     const TYPES: &'static [&'static str] = &["Incremented"];
/// #     fn event_type(&self) -> &'static str { "Incremented" }
/// #     fn event_version(&self) -> u32 { 2 }
/// #     fn decode_stored(t: &str, v: u32, payload: &[u8])
/// #         -> Result<es_runtime::Upcast<Self>, es_runtime::StoredEventError> {
/// #         let bad = es_runtime::StoredEventError::Payload;
/// #         match v {
/// #             2 => es_runtime::codec::decode(payload).map(es_runtime::Upcast::One).map_err(bad),
/// #             1 => match es_runtime::codec::decode(payload).map_err(bad)? {
/// #                 V1::Incremented { up } => Ok(CounterEvent::Incremented { by: up }.into()),
/// #             },
/// #             _ => Err(es_runtime::StoredEventError::UnknownVersion),
/// #         }
/// #     }
/// # }
/// # impl Aggregate for Counter {
/// #     const NAME: &'static str = "counter";
/// #     type Command = u64;
/// #     type Event = CounterEvent;
/// #     type Error = std::convert::Infallible;
/// #     type Services = ();
/// #     fn handle(&self, by: u64) -> Result<Vec<CounterEvent>, Self::Error> {
/// #         Ok(vec![CounterEvent::Incremented { by }])
/// #     }
/// #     fn apply(&mut self, CounterEvent::Incremented { by }: CounterEvent) { self.value += by }
/// # }
///
/// AggregateTest::<Counter>::stored("Incremented", 1, json!({"up": 2}))
///     .stored("Incremented", 2, json!({"by": 3}))
///     .reads_as([CounterEvent::Incremented { by: 2 }, CounterEvent::Incremented { by: 3 }]);
///
/// // A version nothing reads is the error every reader would get.
/// let err = AggregateTest::<Counter>::stored("Incremented", 7, json!({"by": 1})).read();
/// assert!(matches!(err, Err(es_runtime::DecodeError::UnknownVersion { event_version: 7, .. })));
///
/// // And the state they build, for a given/when/then.
/// let test = AggregateTest::<Counter>::stored("Incremented", 1, json!({"up": 2})).given();
/// assert_eq!(test.state().value, 2);
/// ```
#[must_use = "check what the payloads read as with `reads_as`, or build a state with `given`"]
pub struct StoredEvents<A: Aggregate> {
    stored: Vec<Stored>,
    _aggregate: PhantomData<fn() -> A>,
}

struct Stored {
    event_type: String,
    version: u32,
    fields: serde_json::Value,
}

impl<A: Aggregate> Debug for StoredEvents<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for s in &self.stored {
            list.entry(&format_args!("{}", s));
        }
        list.finish()
    }
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` version {} {}",
            self.event_type, self.version, self.fields
        )
    }
}

impl<A: Aggregate> Default for StoredEvents<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Aggregate> StoredEvents<A> {
    /// No payloads yet.
    pub fn new() -> Self {
        StoredEvents {
            stored: Vec::new(),
            _aggregate: PhantomData,
        }
    }

    /// Adds a payload: of type `event_type`, stored at shape `version`, with these fields.
    pub fn stored(mut self, event_type: &str, version: u32, fields: serde_json::Value) -> Self {
        self.stored.push(Stored {
            event_type: event_type.to_owned(),
            version,
            fields,
        });
        self
    }

    /// What the payloads read as now, in order, or why one does not read: the error a reader
    /// of the store would get, under stream `<NAME>-stored`, the payloads at versions 1, 2, ...
    pub fn read(&self) -> Result<Vec<A::Event>, DecodeError> {
        let stream = stream::<A>();
        let mut events = Vec::new();
        for (i, s) in self.stored.iter().enumerate() {
            events.extend(read_one::<A::Event>(&stream, i, s)?);
        }
        Ok(events)
    }

    /// [`read`](Self::read), or a panic naming the payload that does not read, and why.
    #[track_caller]
    fn read_or_panic(&self) -> Vec<A::Event> {
        let stream = stream::<A>();
        let mut events = Vec::new();
        for (i, s) in self.stored.iter().enumerate() {
            match read_one::<A::Event>(&stream, i, s) {
                Ok(read) => events.extend(read),
                Err(e) => panic!(
                    "stored payload {} ({s}) does not read: {}",
                    i + 1,
                    chain(&e)
                ),
            }
        }
        events
    }

    /// Asserts the payloads read as exactly these events, in order.
    ///
    /// # Panics
    ///
    /// When a payload does not read (naming it and why), or they read as other events (showing
    /// what each payload read as).
    #[track_caller]
    pub fn reads_as(self, expected: impl IntoIterator<Item = A::Event>)
    where
        A::Event: PartialEq,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let events = self.read_or_panic();
        if events == expected {
            return;
        }
        let stream = stream::<A>();
        let mut message = String::from(
            "the stored payloads read as other events than expected\n\nstored payload -> read as:",
        );
        for (i, s) in self.stored.iter().enumerate() {
            let read = read_one::<A::Event>(&stream, i, s).unwrap_or_default();
            let _ = write!(message, "\n  {}. {s}\n     -> {read:?}", i + 1);
        }
        let _ = write!(message, "\n\nread:     {events:?}\nexpected: {expected:?}");
        if let Some(at) = events.iter().zip(&expected).position(|(a, b)| a != b) {
            let _ = write!(
                message,
                "\nfirst difference at event {}: read {:?}, expected {:?}",
                at + 1,
                events[at],
                expected[at]
            );
        } else {
            let _ = write!(
                message,
                "\nread {} events, expected {}",
                events.len(),
                expected.len()
            );
        }
        panic!("{message}");
    }

    /// The given/when/then test starting from the state the payloads build.
    ///
    /// # Panics
    ///
    /// When a payload does not read.
    #[track_caller]
    pub fn given(self) -> AggregateTest<A> {
        AggregateTest::given(self.read_or_panic())
    }
}

fn stream<A: Aggregate>() -> String {
    format!("{}-stored", A::NAME)
}

/// An error and those of its sources its message does not already include, each after a
/// colon.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = s.source();
    }
    out
}

/// Encodes one payload as the store holds it and reads it as readers do.
fn read_one<E: DomainEvent>(stream: &str, i: usize, s: &Stored) -> Result<Vec<E>, DecodeError> {
    let at = i + 1;
    // An event without fields is stored as its bare name, one with fields as
    // `{"Type": {fields}}`: the enum's externally tagged form.
    let payload = if s.fields.is_null() {
        codec::encode(&s.event_type)
    } else {
        let mut tagged = serde_json::Map::new();
        tagged.insert(s.event_type.clone(), s.fields.clone());
        codec::encode(&tagged)
    }
    .expect("JSON with string keys always encodes");
    crate::event::decode_events::<E>(stream, at as u64, &s.event_type, s.version, &payload)
        .map(|events| events.into_iter().collect())
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
