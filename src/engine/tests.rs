//! Rule tests of the engine with an injected clock: no network, no sleeping. Each test is
//! named after the rule of SPEC.md it proves; `check_invariants` runs after every story.

mod board;
mod desk;
mod lifecycle;
mod property;
mod race;
mod reopen;
mod restart;
mod resume;
mod routing;
mod shared_store;
mod workspaces;
