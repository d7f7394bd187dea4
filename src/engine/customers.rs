//! The customers in memory: their files, the addresses they write from, and which file holds
//! which chat.
//!
//! A component with its own maps. Its shard guards are never held while a file's lock is
//! taken: every method clones the file's `Arc` out first, so the lock order
//! (`lock_order.rs`) starts at the file.

use std::sync::Arc;

use dashmap::DashMap;

use super::SharedFile;
use crate::core::{Channel, CustomerFile, Profile};
use crate::ids::{ChatId, CustomerId};
use crate::lock_order::{Level, Ordered};

/// Every customer file in memory, and the indexes into them.
#[derive(Debug, Default)]
pub(super) struct Customers {
    files: DashMap<CustomerId, SharedFile>,
    /// The customer behind each address (channel and platform id).
    identities: DashMap<(Channel, String), CustomerId>,
    /// The customer of each chat in memory (a chat only in the database is not here).
    chats: DashMap<ChatId, CustomerId>,
}

impl Customers {
    /// The file of the customer writing from `from` on `channel`, created with `new_id` on first
    /// contact. Concurrent first messages of one customer find the same file (R01).
    pub(super) fn file_for(
        &self,
        channel: Channel,
        from: &str,
        profile: Profile,
        new_id: impl FnOnce() -> CustomerId,
    ) -> SharedFile {
        let id = self
            .identities
            .entry((channel, from.to_owned()))
            .or_insert_with(new_id)
            .clone();
        self.files
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Ordered::new(
                    Level::Customer,
                    CustomerFile::new(id, channel, from.to_owned(), profile),
                ))
            })
            .clone()
    }

    /// Takes a file read back from the store, with its addresses and its chats in memory.
    pub(super) fn insert_restored(&self, file: CustomerFile) -> SharedFile {
        for identity in &file.identities {
            self.identities.insert(identity.clone(), file.id.clone());
        }
        for chat in &file.chats {
            self.chats.insert(chat.id.clone(), file.id.clone());
        }
        let id = file.id.clone();
        let shared = Arc::new(Ordered::new(Level::Customer, file));
        self.files.insert(id, shared.clone());
        shared
    }

    /// One customer's file.
    pub(super) fn file(&self, customer: &CustomerId) -> Option<SharedFile> {
        self.files.get(customer).map(|f| f.clone())
    }

    /// The file of the customer writing from `from` on `channel`, if it has written before.
    pub(super) fn file_at(&self, channel: Channel, from: &str) -> Option<SharedFile> {
        let customer = self.identities.get(&(channel, from.to_owned()))?.clone();
        self.file(&customer)
    }

    /// The customer of a chat in memory.
    pub(super) fn customer_of(&self, chat: &ChatId) -> Option<CustomerId> {
        self.chats.get(chat).map(|c| c.clone())
    }

    /// The file holding a chat in memory; `None` for one only in the database.
    pub(super) fn file_of_chat(&self, chat: &ChatId) -> Option<SharedFile> {
        self.file(&self.customer_of(chat)?)
    }

    /// Whether a chat is in memory.
    pub(super) fn holds_chat(&self, chat: &ChatId) -> bool {
        self.chats.contains_key(chat)
    }

    /// A chat of `customer`'s is now in memory (new, or brought back from the store).
    pub(super) fn chat_added(&self, chat: ChatId, customer: CustomerId) {
        self.chats.insert(chat, customer);
    }

    /// A chat left memory (it is in the store's archive).
    pub(super) fn chat_evicted(&self, chat: &ChatId) {
        self.chats.remove(chat);
    }

    /// Every file, cloned out so that no shard stays locked while they are.
    pub(super) fn files(&self) -> Vec<SharedFile> {
        self.files.iter().map(|f| f.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r01_two_first_messages_from_one_address_find_one_file() {
        let customers = Customers::default();
        let mut ids = 0;
        let mut next = || {
            ids += 1;
            CustomerId::from(format!("cu{ids}"))
        };
        let a = customers.file_for(Channel::Whatsapp, "+49", Profile::default(), &mut next);
        let b = customers.file_for(Channel::Whatsapp, "+49", Profile::default(), &mut next);
        let other = customers.file_for(Channel::Sms, "+49", Profile::default(), &mut next);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other), "an address is a channel and an id");
        assert_eq!(customers.files().len(), 2);
    }

    #[test]
    fn a_chat_is_found_through_its_customer_until_it_is_evicted() {
        let customers = Customers::default();
        let file = customers.file_for(Channel::Telegram, "42", Profile::default(), || "cu1".into());
        let chat = ChatId::from("ch1");
        customers.chat_added(chat.clone(), "cu1".into());
        assert!(Arc::ptr_eq(
            &customers.file_of_chat(&chat).expect("in memory"),
            &file
        ));
        customers.chat_evicted(&chat);
        assert!(customers.file_of_chat(&chat).is_none());
        assert!(!customers.holds_chat(&chat));
    }
}
