//! Keys with how many contributions hold each: the incremental builder adds and takes back one
//! route's share at a time, and a key lives while some route still holds it.

use std::collections::BTreeMap;

/// Counts one more holder of `key`; true when the key appeared.
pub fn add<K: Ord + Clone>(counts: &mut BTreeMap<K, u32>, key: &K) -> bool {
    match counts.get_mut(key) {
        Some(n) => {
            *n += 1;
            false
        }
        None => {
            counts.insert(key.clone(), 1);
            true
        }
    }
}

/// Counts one holder of `key` fewer; true when the key went away.
pub fn remove<K: Ord>(counts: &mut BTreeMap<K, u32>, key: &K) -> bool {
    match counts.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            counts.remove(key);
            true
        }
        None => false,
    }
}

/// [`add`] for each key; true when one appeared.
pub fn add_all<K: Ord + Clone>(counts: &mut BTreeMap<K, u32>, keys: &[K]) -> bool {
    keys.iter()
        .fold(false, |appeared, k| add(counts, k) | appeared)
}

/// [`remove`] for each key; true when one went away.
pub fn remove_all<K: Ord>(counts: &mut BTreeMap<K, u32>, keys: &[K]) -> bool {
    keys.iter().fold(false, |gone, k| remove(counts, k) | gone)
}
