//! The keyspace: every key and the value are built once before the run, so
//! the hot loop only clones reference-counted buffers.

use bytes::Bytes;
use rand::distr::Alphanumeric;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::BenchError;

/// All the keys a workload may touch, plus the one value it writes.
#[derive(Debug)]
pub struct KeySpace {
    keys: Vec<Bytes>,
    value: Bytes,
}

impl KeySpace {
    /// Builds `count` keys, each `prefix` followed by exactly `key_size`
    /// bytes (zero-padded decimal indexes, so they sort in index order), and
    /// a random `val_size` value.
    pub fn new(
        prefix: &str,
        count: u64,
        key_size: usize,
        val_size: usize,
    ) -> Result<Self, BenchError> {
        let digits = count.saturating_sub(1).max(1).ilog10() as usize + 1;
        if digits > key_size {
            return Err(BenchError::KeySizeTooSmall {
                key_size,
                count,
                digits,
            });
        }
        let count = usize::try_from(count).map_err(|_| BenchError::KeySpaceTooLarge(count))?;
        let keys = (0..count)
            .map(|i| Bytes::from(format!("{prefix}{i:0key_size$}")))
            .collect();
        let value = SmallRng::from_os_rng()
            .sample_iter(Alphanumeric)
            .take(val_size)
            .collect::<Vec<u8>>()
            .into();
        Ok(Self { keys, value })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys (never, for a keyspace [`new`](Self::new) built).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key at `index` (which must be below [`len`](Self::len)).
    pub fn key(&self, index: usize) -> &Bytes {
        &self.keys[index]
    }

    /// The value every write stores.
    pub fn value(&self) -> &Bytes {
        &self.value
    }
}

/// The keys client `client` of `clients` owns: a disjoint share of the
/// keyspace when there are at least as many keys as clients, otherwise one
/// key shared with the other clients that map to it.
pub fn owned_keys(client: usize, clients: usize, keyspace: usize) -> Vec<usize> {
    let stride = clients.min(keyspace).max(1);
    (client % keyspace.max(1)..keyspace)
        .step_by(stride)
        .collect()
}

/// How a client chooses its next key.
#[derive(Debug)]
pub enum KeyPicker {
    /// Every `stride`-th index starting at the client's number, wrapping
    /// around: together the clients walk the keyspace in order.
    Sequential { next: usize, stride: usize },
    /// Uniformly random.
    Random(SmallRng),
}

impl KeyPicker {
    /// A picker for client `client` of `clients`.
    pub fn new(sequential: bool, client: usize, clients: usize) -> Self {
        if sequential {
            Self::Sequential {
                next: client,
                stride: clients.max(1),
            }
        } else {
            Self::Random(SmallRng::from_os_rng())
        }
    }

    /// The next index below `len` (`len` must not be zero).
    pub fn pick(&mut self, len: usize) -> usize {
        match self {
            Self::Sequential { next, stride } => {
                let index = *next % len;
                *next = index + *stride;
                index
            }
            Self::Random(rng) => rng.random_range(0..len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size() {
        let ks = KeySpace::new("", 1000, 8, 256).unwrap();
        assert_eq!(ks.len(), 1000);
        assert_eq!(ks.key(0).as_ref(), b"00000000");
        assert_eq!(ks.key(999).as_ref(), b"00000999");
        assert_eq!(ks.value().len(), 256);
        let prefixed = KeySpace::new("bench/", 10, 2, 0).unwrap();
        assert_eq!(prefixed.key(3).as_ref(), b"bench/03");
    }

    #[test]
    fn too_small_keys_are_refused() {
        assert!(KeySpace::new("", 1001, 3, 1).is_err());
        assert!(KeySpace::new("", 1000, 3, 1).is_ok());
        assert!(KeySpace::new("p/", 1, 1, 0).is_ok());
    }

    #[test]
    fn owned_keys_partition_the_keyspace() {
        let mut all: Vec<usize> = (0..4).flat_map(|c| owned_keys(c, 4, 10)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        // More clients than keys: each still owns one key.
        assert_eq!(owned_keys(5, 8, 3), vec![2]);
    }

    #[test]
    fn sequential_picker_wraps() {
        let mut p = KeyPicker::new(true, 1, 2);
        let picks: Vec<usize> = (0..4).map(|_| p.pick(5)).collect();
        assert_eq!(picks, [1, 3, 0, 2]);
    }
}
