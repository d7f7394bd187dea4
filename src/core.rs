//! The domain core: the product rules of SPEC.md in plain types.
//!
//! No I/O, no async, no clock: every operation is handed `now` and either changes its state and
//! says what happened, or refuses with a typed [`Rejection`] and changes nothing.
//!
//! No serde either: the wire (`protocol`), the configuration (`config`) and the store
//! (`store/codec.rs`) each write down how these types look to them and map to and from them
//! variant by variant, so renaming something here cannot change what a client, a config file
//! or a database holds.

pub mod agent;
pub mod analytics;
pub mod channel;
pub mod chat;
pub mod customer;
pub mod hours;
pub mod queue;
pub mod rejection;
pub mod router;

pub use agent::{AgentProfile, Presence, Role};
pub use channel::{AfterWindow, Channel, ChannelPolicy, Policies};
pub use chat::{
    Author, Chat, ChatState, CloseReason, Delivery, Incoming, MediaKind, Message, MessageKind, Payload,
    SnoozeUntil, Stage,
};
pub use customer::{CustomerEvent, CustomerFile, Events, Profile};
pub use hours::{Hours, HoursError};
pub use queue::{QueuePlan, RoutingAsk, Skills, Ticket};
pub use rejection::{ErrorCode, LiveElsewhere, Rejection};
pub use router::{
    Accepted, Arrival, Changes, LoadChange, QueueChange, Router, RouterEvent, SeatSpec, Standing, Waiting,
    WithdrawReason,
};
