//! 100,000 distinct aggregates through a host bounded to 1,000 live instances: the live count
//! never passes the bound, and the memory held by instances stays bounded.
//!
//! Each instance holds 16 KiB, so 100,000 unbounded instances would hold 1.6 GB; the store's
//! events are small. A counting allocator measures what the process holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use es_runtime::{Aggregate, DomainEvent, Host, MemoryStore};
use serde::{Deserialize, Serialize};

struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BALLAST: usize = 16 * 1024;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Heavy {
    opened: bool,
    #[serde(skip)]
    ballast: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum HeavyEvent {
    Opened,
}

impl DomainEvent for HeavyEvent {
    const TYPES: &'static [&'static str] = &["Opened"];
    fn event_type(&self) -> &'static str {
        "Opened"
    }
}

impl Aggregate for Heavy {
    const NAME: &'static str = "heavy";
    type Command = ();
    type Event = HeavyEvent;
    type Error = std::convert::Infallible;
    type Services = ();
    fn handle(&self, (): ()) -> Result<Vec<HeavyEvent>, Self::Error> {
        Ok(vec![HeavyEvent::Opened])
    }
    fn apply(&mut self, HeavyEvent::Opened: HeavyEvent) {
        self.opened = true;
        self.ballast = vec![1; BALLAST];
    }
}

#[test]
fn a_hundred_thousand_aggregates_through_a_thousand_live_slots() {
    const AGGREGATES: u64 = 100_000;
    const MAX_LIVE: u64 = 1_000;
    let host = Host::<Heavy, _>::builder(MemoryStore::new())
        .max_live(MAX_LIVE as usize)
        .build();
    let baseline = HELD.load(Ordering::Relaxed);
    // Four threads, each with its own quarter of the ids, sampling as they go.
    let (peak_live, peak_held) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let host = &host;
                scope.spawn(move || {
                    let (mut peak_live, mut peak_held) = (0, 0);
                    for i in 0..AGGREGATES / 4 {
                        host.execute(t * AGGREGATES / 4 + i, ()).unwrap();
                        if i % 500 == 499 {
                            peak_live = peak_live.max(host.metrics().live);
                            peak_held = peak_held.max(HELD.load(Ordering::Relaxed) - baseline);
                        }
                    }
                    (peak_live, peak_held)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(l, h), (wl, wh)| (l.max(wl), h.max(wh)))
    });
    let m = host.metrics();
    assert!(peak_live <= MAX_LIVE, "peak live {peak_live}");
    assert_eq!(m.live, MAX_LIVE);
    // A few more with threads: a slot evicted before its inserter locked it is inserted again.
    assert!(m.passivations_lru >= AGGREGATES - MAX_LIVE, "{m:?}");
    // The instances' ballast alone would be 1.6 GB unbounded. What grows is the store's
    // 100,000 small events (a few hundred bytes each with their index).
    let instances = MAX_LIVE as isize * BALLAST as isize;
    let held_full = HELD.load(Ordering::Relaxed) - baseline;
    assert!(held_full >= instances, "held {held_full} with 1,000 live");
    assert!(
        peak_held < instances + 100 * 1024 * 1024,
        "held {peak_held} bytes at the peak"
    );
    // Dropping every instance gives the ballast back.
    host.passivate_all();
    let held = HELD.load(Ordering::Relaxed) - baseline;
    assert!(
        held < peak_held - instances / 2,
        "held {held} after passivating all"
    );
    assert_eq!(host.metrics().live, 0);
}
