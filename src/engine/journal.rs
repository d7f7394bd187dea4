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

use std::ops::{Deref, DerefMut};

use parking_lot::MutexGuard;

use crate::core::CustomerFile;
use crate::store::{Change, ChatRecord, CustomerRecord, Store};

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
        let changes = changes_since(&before, &self.file);
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
