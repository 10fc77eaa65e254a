//! Who the members are: etcd-compatible member and cluster ids, and the
//! `--initial-cluster` list they are derived from.
//!
//! Ids are computed exactly as etcd computes them, so a cluster started with
//! the same flags gets the same ids under cetera and under etcd. This module
//! never talks to the network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::raft::{MemberId, MemberNode};

/// A malformed `--initial-cluster`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("--initial-cluster entry {0:?} is not of the form name=url")]
    BadEntry(String),
    #[error("--initial-cluster is empty")]
    Empty,
    #[error("--initial-cluster has no member named {name:?} (set --name to one of: {known})")]
    NameMissing { name: String, known: String },
    #[error(
        "--initial-cluster lists {listed:?} for {name:?} but --initial-advertise-peer-urls is {advertised:?}"
    )]
    UrlMismatch {
        name: String,
        listed: Vec<String>,
        advertised: Vec<String>,
    },
    #[error("peer URL {0} appears twice in --initial-cluster")]
    DuplicateUrl(String),
}

/// The members named by `--initial-cluster`, by name, each with its sorted
/// peer URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialCluster {
    members: BTreeMap<String, Vec<String>>,
}

impl InitialCluster {
    /// Parses `n1=http://a:2380,n1=http://b:2380,n2=...`; a name may repeat
    /// to give a member several URLs.
    pub fn parse(spec: &str) -> Result<Self, ClusterError> {
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen_urls = std::collections::HashSet::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .filter(|(n, u)| !n.is_empty() && !u.is_empty())
                .ok_or_else(|| ClusterError::BadEntry(entry.to_string()))?;
            let url = url.trim_end_matches('/').to_string();
            if !seen_urls.insert(url.clone()) {
                return Err(ClusterError::DuplicateUrl(url));
            }
            members.entry(name.to_string()).or_default().push(url);
        }
        if members.is_empty() {
            return Err(ClusterError::Empty);
        }
        for urls in members.values_mut() {
            urls.sort();
        }
        Ok(Self { members })
    }

    /// Checks that `name` is listed with exactly the URLs it advertises.
    pub fn check_self(&self, name: &str, advertised: &[String]) -> Result<(), ClusterError> {
        let listed = self
            .members
            .get(name)
            .ok_or_else(|| ClusterError::NameMissing {
                name: name.to_string(),
                known: self.members.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let mut advertised: Vec<String> = advertised
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        advertised.sort();
        if *listed != advertised {
            return Err(ClusterError::UrlMismatch {
                name: name.to_string(),
                listed: listed.clone(),
                advertised,
            });
        }
        Ok(())
    }

    /// How many members (names) it lists.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Never true for a parsed cluster (parsing refuses an empty one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member with its id, derived from its URLs and the token.
    pub fn members(&self, token: &str) -> BTreeMap<MemberId, MemberNode> {
        self.members
            .iter()
            .map(|(name, urls)| {
                let node = MemberNode {
                    name: name.clone(),
                    peer_urls: urls.clone(),
                };
                (member_id(urls, token, None), node)
            })
            .collect()
    }
}

/// `name=url,...` with the pairs sorted, as etcd writes a cluster (what a
/// member registers under a discovery token).
impl std::fmt::Display for InitialCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut pairs: Vec<String> = self
            .members
            .iter()
            .flat_map(|(name, urls)| urls.iter().map(move |url| format!("{name}={url}")))
            .collect();
        pairs.sort();
        f.write_str(&pairs.join(","))
    }
}

/// etcd's member id: the first 8 bytes (big-endian) of the SHA-1 of the
/// sorted peer URLs, the cluster token and, for members added at run time,
/// the Unix time of the addition.
pub fn member_id(peer_urls: &[String], token: &str, added_at_unix: Option<u64>) -> MemberId {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    for url in &urls {
        hasher.update(url.as_bytes());
    }
    hasher.update(token.as_bytes());
    if let Some(secs) = added_at_unix {
        hasher.update(secs.to_string().as_bytes());
    }
    first_u64(&hasher.finalize())
}

/// etcd's cluster id: the first 8 bytes of the SHA-1 of the sorted initial
/// member ids, each big-endian.
pub fn cluster_id(member_ids: impl IntoIterator<Item = MemberId>) -> u64 {
    let mut ids: Vec<MemberId> = member_ids.into_iter().collect();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// What a data dir records about the member that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub member_id: MemberId,
    pub cluster_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids captured from etcd 3.4 started with
    /// `--initial-cluster default=http://localhost:2380` and the default
    /// token `etcd-cluster`.
    #[test]
    fn ids_match_etcd_for_the_default_cluster() {
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id([id])), "cdf818194e3a8c32");
    }

    /// Ids captured from etcd 3.4.23 bootstrapped through cetera-discovery:
    /// with `--discovery`, the discovery URL is the token.
    #[test]
    fn ids_match_etcd_for_a_discovery_bootstrap() {
        let url = "http://127.0.0.1:19087/0abbbd251c2c107a4c84ac5f2cdeebe3";
        let id = member_id(&["http://127.0.0.1:19380".to_string()], url, None);
        assert_eq!(format!("{id:x}"), "7316d62661347453");
        assert_eq!(format!("{:x}", cluster_id([id])), "bdaa96c579d04ad7");
    }

    #[test]
    fn writes_a_cluster_as_sorted_pairs() {
        let c = InitialCluster::parse("b=http://2:2380,a=http://3:2380,a=http://1:2380").unwrap();
        assert_eq!(
            c.to_string(),
            "a=http://1:2380,a=http://3:2380,b=http://2:2380"
        );
        assert_eq!(InitialCluster::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn parses_and_checks_initial_cluster() {
        let c = InitialCluster::parse("a=http://1:2380,b=http://2:2380,a=http://3:2380").unwrap();
        let members = c.members("t");
        assert_eq!(members.len(), 2);
        assert!(
            c.check_self("a", &["http://3:2380".into(), "http://1:2380".into()])
                .is_ok()
        );
        assert!(matches!(
            c.check_self("a", &["http://1:2380".into()]),
            Err(ClusterError::UrlMismatch { .. })
        ));
        assert!(matches!(
            c.check_self("z", &[]),
            Err(ClusterError::NameMissing { .. })
        ));
        assert_eq!(InitialCluster::parse(""), Err(ClusterError::Empty));
        assert!(matches!(
            InitialCluster::parse("a"),
            Err(ClusterError::BadEntry(_))
        ));
        assert!(matches!(
            InitialCluster::parse("a=http://1,b=http://1"),
            Err(ClusterError::DuplicateUrl(_))
        ));
    }
}
