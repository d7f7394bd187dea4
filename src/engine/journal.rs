//! Recording what the engine changes in the durable store (issue 5).
//!
//! Every change to a customer's file is made through an [`Edit`]: the file's lock together
//! with a note of what the file held when it was taken. When the edit ends, still under the
//! lock, the difference (the customer's record if it changed, each chat created or changed,
//! each message added) is submitted to the store as one all-or-nothing submission. Submitting
//! under the lock keeps the store's order the same as the order the changes happened in, per
//! customer, and the writer commits submissions in order: if a change is on disk, so is
//! everything it was built on.
//!
//! Working out the difference here, instead of in every operation, means no operation can
//! forget to record something: whatever an operation did to the file is compared.
//!
//! The gateway does not hold the receipts: it asks the engine for a write point after the
//! operation and answers once the store has reached it (write before acknowledge).

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use parking_lot::MutexGuard;

use crate::core::CustomerFile;
use crate::store::{Change, ChatRecord, CustomerRecord, Store};

thread_local! {
    /// Changes made on this thread while an edit is open, outside the file (the KPI events
    /// an operation records): they go into the edit's submission, so that an event is never
    /// on disk without the change it counts. Edits never nest: the engine holds one
    /// customer's lock at a time.
    static ALONGSIDE: RefCell<Option<Vec<Change>>> = const { RefCell::new(None) };
}

/// Adds `change` to the edit open on this thread; hands it back if there is none.
pub(super) fn alongside(change: Change) -> Option<Change> {
    ALONGSIDE.with(|pending| match pending.borrow_mut().as_mut() {
        Some(changes) => {
            changes.push(change);
            None
        }
        None => Some(change),
    })
}

/// A customer's file, locked for a change that the store is told about when the edit ends.
pub(super) struct Edit<'a> {
    file: MutexGuard<'a, CustomerFile>,
    journal: Option<(&'a Store, Before)>,
}

/// What the file held when the edit started.
struct Before {
    customer: CustomerRecord,
    /// Each chat's record and how many messages it had.
    chats: Vec<(ChatRecord, usize)>,
}

impl<'a> Edit<'a> {
    /// Starts an edit of the locked `file`; without a store it is only the lock.
    pub(super) fn start(file: MutexGuard<'a, CustomerFile>, store: Option<&'a Store>) -> Self {
        let journal = store.map(|store| {
            let before = Before {
                customer: CustomerRecord::of(&file),
                chats: file
                    .chats
                    .iter()
                    .map(|c| (ChatRecord::of(c), c.messages.len()))
                    .collect(),
            };
            ALONGSIDE.with(|pending| *pending.borrow_mut() = Some(Vec::new()));
            (store, before)
        });
        Self { file, journal }
    }
}

impl Deref for Edit<'_> {
    type Target = CustomerFile;

    fn deref(&self) -> &CustomerFile {
        &self.file
    }
}

impl DerefMut for Edit<'_> {
    fn deref_mut(&mut self) -> &mut CustomerFile {
        &mut self.file
    }
}

impl Drop for Edit<'_> {
    fn drop(&mut self) {
        let Some((store, before)) = self.journal.take() else {
            return;
        };
        let mut changes = changes_since(&before, &self.file);
        changes.extend(
            ALONGSIDE
                .with(|pending| pending.borrow_mut().take())
                .unwrap_or_default(),
        );
        if !changes.is_empty() {
            // The receipt is not kept: callers wait on a write point instead (module docs).
            let _receipt = store.submit(changes);
        }
    }
}

/// What `file` gained or changed since `before`, customer first, so that a chat is never
/// stored without its customer.
fn changes_since(before: &Before, file: &CustomerFile) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut new_chat = false;
    for chat in &file.chats {
        let known = before.chats.iter().find(|(c, _)| c.id == chat.id);
        let record = ChatRecord::of(chat);
        let stored_messages = match known {
            Some((old, stored)) => {
                if *old != record {
                    changes.push(Change::UpsertChat(record));
                }
                *stored
            }
            None => {
                new_chat = true;
                changes.push(Change::UpsertChat(record));
                0
            }
        };
        changes.extend(
            chat.messages
                .iter()
                .enumerate()
                .skip(stored_messages)
                .map(|(seq, message)| Change::AppendMessage {
                    chat: chat.id.clone(),
                    seq: seq as u64,
                    message: message.clone(),
                }),
        );
    }
    let customer = CustomerRecord::of(file);
    // A customer is written with its first chat (it may be new, and unchanged by the edit).
    if new_chat || customer != before.customer {
        changes.insert(0, Change::UpsertCustomer(customer));
    }
    changes
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use parking_lot::Mutex;

    use super::*;
    use crate::core::analytics::{Event, EventKind};
    use crate::core::{Channel, Profile};
    use crate::ids::CustomerId;
    use crate::store::StoreOptions;

    #[test]
    fn issue5_an_event_recorded_under_an_edit_is_stored_in_the_edit_s_submission() {
        let dir = std::env::temp_dir().join(format!("switchboard-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("db.sqlite"), StoreOptions::default()).expect("opens");
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("date");
        let event = || {
            Change::Analytics(Event {
                at,
                agent: "ana".into(),
                channel: Channel::Whatsapp,
                kind: EventKind::Reopened,
            })
        };
        let file = Mutex::new(CustomerFile::new(
            CustomerId::from("cu1"),
            Channel::Whatsapp,
            "+1".into(),
            Profile::default(),
        ));

        assert!(
            alongside(event()).is_some(),
            "no edit open: the caller submits it"
        );
        let mut edit = Edit::start(file.lock(), Some(&store));
        assert!(alongside(event()).is_none(), "taken into the open edit");
        edit.opted_out.push(Channel::Whatsapp);
        drop(edit);
        assert!(alongside(event()).is_some(), "the edit is closed");

        let receipt = store.submit(Vec::new());
        receipt.wait().expect("stored");
        let snapshot = store.load().expect("loads");
        assert_eq!(snapshot.events.len(), 1);
        assert_eq!(snapshot.customers[0].opted_out, vec![Channel::Whatsapp]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
