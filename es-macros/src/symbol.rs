//! Every attribute and option name the macro reads, in one place.

/// `#[command]` on a method.
pub(crate) const COMMAND: &str = "command";
/// `#[event]` on a method.
pub(crate) const EVENT: &str = "event";
/// `#[upcast(...)]` on a function reading a past shape of an event.
pub(crate) const UPCAST: &str = "upcast";
/// `#[serde(...)]` on a parameter, carried onto the generated field.
pub(crate) const SERDE: &str = "serde";
/// `#[doc = "..."]`, the form of `///` comments.
pub(crate) const DOC: &str = "doc";

// Options of `#[aggregate(...)]`.
pub(crate) const NAME: &str = "name";
pub(crate) const ERROR: &str = "error";
pub(crate) const SNAPSHOT_EVERY: &str = "snapshot_every";
pub(crate) const SNAPSHOT_KEEP: &str = "snapshot_keep";
pub(crate) const STATE_VERSION: &str = "state_version";
pub(crate) const VIS: &str = "vis";
pub(crate) const DERIVE: &str = "derive";
pub(crate) const COMMAND_DERIVE: &str = "command_derive";
pub(crate) const EVENT_DERIVE: &str = "event_derive";
pub(crate) const CRATE: &str = "crate";
pub(crate) const SERVICES: &str = "services";

/// Every option of `#[aggregate(...)]`, for error messages.
pub(crate) const AGGREGATE_OPTIONS: &[&str] = &[
    NAME,
    ERROR,
    SNAPSHOT_EVERY,
    SNAPSHOT_KEEP,
    STATE_VERSION,
    VIS,
    DERIVE,
    COMMAND_DERIVE,
    EVENT_DERIVE,
    CRATE,
    SERVICES,
];

// Options of `#[command(...)]`.
pub(crate) const EMITS: &str = "emits";

// Options of `#[event(...)]` (`name` is shared with the aggregate).
pub(crate) const ALIAS: &str = "alias";
/// The version of an event's shape (`#[event]`), or of the past shape an upcast reads.
pub(crate) const VERSION: &str = "version";

// Options of `#[upcast(...)]` (and `version`).
pub(crate) const FROM: &str = "from";
pub(crate) const RETIRED: &str = "retired";
