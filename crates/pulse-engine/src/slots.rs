//! The profiles of one partition: a slot per customer in a hash table keyed by the slot's own
//! handle on the customer id. A map from id to slot would hold the handle twice, once as the
//! map's key and once in the slot (which needs it to mark itself changed without an
//! allocation): 16 bytes more in every bucket of the table, empty ones included.

use crate::customer::profile::Profile;
use crate::timer::PendingRecheck;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;
use std::sync::Arc;

/// A profile and whether it changed since the last drain of changes, with the slot's own
/// handle on the key (marking a profile changed costs a reference count, not an allocation,
/// on the hot path) and where the profile's recheck sits in the timer index.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub key: Arc<str>,
    pub profile: Profile,
    pub recheck: PendingRecheck,
    pub dirty: bool,
}

impl Slot {
    pub fn new(key: Arc<str>, profile: Profile, recheck: PendingRecheck) -> Box<Self> {
        Box::new(Self {
            key,
            profile,
            recheck,
            dirty: false,
        })
    }
}

/// Slots are boxed: the table keeps spare capacity (up to half of it empty after growing), and
/// an empty bucket costs 8 bytes where an inline slot would cost a whole profile.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    table: HashTable<Box<Slot>>,
    hasher: foldhash::fast::RandomState,
}

impl Slots {
    fn hash(&self, customer: &str) -> u64 {
        self.hasher.hash_one(customer)
    }

    pub fn get(&self, customer: &str) -> Option<&Slot> {
        let hash = self.hash(customer);
        self.table.find(hash, |s| &*s.key == customer).map(|s| &**s)
    }

    pub fn get_mut(&mut self, customer: &str) -> Option<&mut Slot> {
        let hash = self.hash(customer);
        self.table
            .find_mut(hash, |s| &*s.key == customer)
            .map(|s| &mut **s)
    }

    /// Adds `slot`, or replaces the one of its customer.
    pub fn insert(&mut self, slot: Box<Slot>) -> &mut Slot {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(&*slot.key);
        match self
            .table
            .entry(hash, |s| s.key == slot.key, |s| hasher.hash_one(&*s.key))
        {
            Entry::Occupied(mut e) => {
                *e.get_mut() = slot;
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(slot).into_mut(),
        }
    }

    pub fn remove(&mut self, customer: &str) -> Option<Box<Slot>> {
        let hash = self.hash(customer);
        let found = self.table.find_entry(hash, |s| &*s.key == customer).ok()?;
        Some(found.remove().0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.table.iter().map(|s| &**s)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.table.iter_mut().map(|s| &mut **s)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_found_replaced_and_removed_by_customer() {
        let mut s = Slots::default();
        for c in ["a", "b", "c"] {
            s.insert(Slot::new(
                c.into(),
                Profile::default(),
                PendingRecheck::default(),
            ));
        }
        let seen = Profile {
            events_total: 2,
            ..Profile::default()
        };
        s.insert(Slot::new("b".into(), seen, PendingRecheck::default()));
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("b").map(|x| x.profile.events_total), Some(2));
        s.get_mut("a").expect("a is there").profile.events_total = 5;
        assert_eq!(s.get("a").map(|x| x.profile.events_total), Some(5));
        assert!(s.remove("c").is_some() && s.remove("c").is_none());
        assert!(s.get("c").is_none());
        let mut keys: Vec<_> = s.iter().map(|x| x.key.to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["a", "b"]);
    }
}
