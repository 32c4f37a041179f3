//! Commands that consult services (the bank example's cash card: a clock and a fee schedule):
//! through the host over memory and LMDB, blocking and async, again after a version conflict,
//! and through the given/when/then helper.

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/bank/atm.rs"]
mod atm;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use es::testing::AggregateTest;
use es::{Aggregate, EventStore, Host, LmdbStore, ManualClock, MemoryStore, Timestamp};

use atm::{BankServices, CardError, CashCard, CashCardCommand, CashCardEvent, DAILY_LIMIT};

const DAY: u64 = 86_400_000_000_000;

/// A fee schedule that counts how often it is asked.
#[derive(Default)]
struct CountingFees {
    asked: AtomicUsize,
}

impl atm::FeeSchedule for CountingFees {
    fn fee(&self, amount: u64) -> u64 {
        self.asked.fetch_add(1, Ordering::SeqCst);
        amount / 100
    }
}

struct Fixture {
    clock: Arc<ManualClock>,
    fees: Arc<CountingFees>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            clock: Arc::new(ManualClock::new(Timestamp(10 * DAY + 5))),
            fees: Arc::default(),
        }
    }

    fn services(&self) -> BankServices {
        BankServices {
            clock: self.clock.clone(),
            fees: self.fees.clone(),
        }
    }

    fn asked(&self) -> usize {
        self.fees.asked.load(Ordering::SeqCst)
    }
}

fn withdraw(amount: u64) -> CashCardCommand {
    CashCardCommand::Withdraw { amount }
}

/// Runs a future to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(10)),
        }
    }
}

/// The host passes its services to every command, blocking and async; the events record
/// what the services said, and the state is rebuilt from them without any service.
fn host_consults_its_services<S: EventStore + 'static>(store: Arc<S>) {
    let fixture = Fixture::new();
    let host = Host::<CashCard, _>::builder(store.clone())
        .services(fixture.services())
        .build();

    let done = host.execute("c1", withdraw(20_000)).unwrap();
    assert_eq!(
        done.events[0].payload,
        CashCardEvent::CashWithdrawn {
            amount: 20_000,
            fee: 200,
            day: 10
        }
    );
    let done = block_on(host.execute_async("c1", withdraw(30_000))).unwrap();
    assert_eq!(
        done.events[0].payload,
        CashCardEvent::CashWithdrawn {
            amount: 30_000,
            fee: 300,
            day: 10
        }
    );
    assert_eq!(fixture.asked(), 2);

    // The clock decides: the limit is reached today, and free again tomorrow.
    let refused = block_on(host.execute_async("c1", withdraw(1))).unwrap_err();
    assert_eq!(
        refused.rejection(),
        Some(&CardError::DailyLimit {
            limit: DAILY_LIMIT,
            withdrawn_today: DAILY_LIMIT,
            requested: 1
        })
    );
    fixture.clock.advance(Duration::from_nanos(DAY));
    let done = host.execute("c1", withdraw(5000)).unwrap();
    assert_eq!(
        done.events[0].payload,
        CashCardEvent::CashWithdrawn {
            amount: 5000,
            fee: 50,
            day: 11
        }
    );

    // A command that takes no services runs beside those that do.
    host.execute("c1", CashCardCommand::Block).unwrap();
    let refused = host.execute("c1", withdraw(1)).unwrap_err();
    assert_eq!(refused.rejection(), Some(&CardError::Blocked));

    // Rehydration applies the stored events: no service is asked.
    let asked = fixture.asked();
    host.passivate("c1");
    let card = host.state("c1").unwrap();
    assert_eq!(card.withdrawn_today(), 5000);
    assert_eq!(card.fees_paid(), 200 + 300 + 50);
    assert_eq!(fixture.asked(), asked);
}

/// After a version conflict the host decides again, on the caught-up state, with the same
/// services.
fn a_retry_consults_the_same_services<S: EventStore + 'static>(store: Arc<S>) {
    let fixture = Fixture::new();
    let a = Host::<CashCard, _>::builder(store.clone())
        .services(fixture.services())
        .build();
    let b = Host::<CashCard, _>::builder(store.clone())
        .services(fixture.services())
        .build();
    a.execute("c2", withdraw(10_000)).unwrap();
    b.execute("c2", withdraw(10_000)).unwrap(); // b loads version 1, writes 2
    assert_eq!(fixture.asked(), 2);

    // `a` still holds version 1: its first attempt conflicts, the retry decides again.
    let done = a.execute("c2", withdraw(10_000)).unwrap();
    assert_eq!(done.version, 3);
    assert_eq!((a.metrics().conflicts, a.metrics().retries), (1, 1));
    assert_eq!(fixture.asked(), 4, "both attempts asked the fee schedule");
    assert_eq!(a.state("c2").unwrap().withdrawn_today(), 30_000);

    // The retry's decision sees the other host's withdrawal: over the limit now.
    b.execute("c2", withdraw(10_000)).unwrap(); // 400 taken out, `a` behind again
    let refused = block_on(a.execute_async("c2", withdraw(15_000))).unwrap_err();
    assert_eq!(
        refused.rejection(),
        Some(&CardError::DailyLimit {
            limit: DAILY_LIMIT,
            withdrawn_today: 40_000,
            requested: 15_000
        })
    );
    assert_eq!(a.metrics().conflicts, 2);
}

#[test]
fn memory_host_consults_its_services() {
    host_consults_its_services(Arc::new(MemoryStore::new()));
}

#[test]
fn lmdb_host_consults_its_services() {
    let dir = tempfile::tempdir().unwrap();
    host_consults_its_services(Arc::new(LmdbStore::open(dir.path()).unwrap()));
}

#[test]
fn memory_retry_consults_the_same_services() {
    a_retry_consults_the_same_services(Arc::new(MemoryStore::new()));
}

#[test]
fn lmdb_retry_consults_the_same_services() {
    let dir = tempfile::tempdir().unwrap();
    a_retry_consults_the_same_services(Arc::new(LmdbStore::open(dir.path()).unwrap()));
}

#[test]
fn given_when_then_with_services() {
    let fixture = Fixture::new();
    let earlier = CashCardEvent::CashWithdrawn {
        amount: 45_000,
        fee: 0,
        day: 10,
    };
    AggregateTest::<CashCard>::given([earlier.clone()])
        .with_services(fixture.services())
        .when(withdraw(5000))
        .then([CashCardEvent::CashWithdrawn {
            amount: 5000,
            fee: 50,
            day: 10,
        }]);
    AggregateTest::<CashCard>::given([earlier.clone()])
        .with_services(fixture.services())
        .when(withdraw(5001))
        .then_error(CardError::DailyLimit {
            limit: DAILY_LIMIT,
            withdrawn_today: 45_000,
            requested: 5001,
        });
    // Another day, by the clock the test gives.
    fixture.clock.advance(Duration::from_nanos(DAY));
    let card = AggregateTest::<CashCard>::given([earlier])
        .with_services(fixture.services())
        .when(withdraw(50_000))
        .then([CashCardEvent::CashWithdrawn {
            amount: 50_000,
            fee: 500,
            day: 11,
        }]);
    assert_eq!(card.withdrawn_today(), 50_000);
}

#[test]
#[should_panic(expected = "consult services: give them with `AggregateTest::with_services`")]
fn given_when_then_without_the_services_says_so() {
    let _ = AggregateTest::<CashCard>::given_no_events().when(withdraw(1));
}

#[test]
#[should_panic(expected = "run them through `Aggregate::handle_with_services`")]
fn handle_without_services_says_how_to_run_the_command() {
    let _ = CashCard::default().handle(withdraw(1));
}

#[test]
fn the_services_are_no_field_of_the_command() {
    let schema = CashCard::schema();
    let withdraw = schema
        .commands
        .iter()
        .find(|c| c.name == "Withdraw")
        .unwrap();
    let fields: Vec<&str> = withdraw.fields.iter().map(|f| f.name).collect();
    assert_eq!(fields, ["amount"]);
}

/// Stored payloads read as events, an event without fields included, and give the state a
/// command with services runs on.
#[test]
fn stored_payloads_then_a_command_with_services() {
    let fixture = Fixture::new();
    AggregateTest::<CashCard>::stored("Blocked", 1, serde_json::json!(null))
        .reads_as([CashCardEvent::Blocked]);
    AggregateTest::<CashCard>::stored(
        "CashWithdrawn",
        1,
        serde_json::json!({"amount": 49_000, "fee": 0, "day": 10}),
    )
    .given()
    .with_services(fixture.services())
    .when(withdraw(2_000))
    .then_error(CardError::DailyLimit {
        limit: DAILY_LIMIT,
        withdrawn_today: 49_000,
        requested: 2_000,
    });
}
