//! `discovery new` (not in etcdctl): asks a discovery service
//! (`cetera-discovery`, or any service with etcd's `/new?size=N`) for a fresh
//! token and prints its URL, the value for `cetera --discovery`. It talks to
//! the discovery service only, never to the cluster.

use clap::Subcommand;

use cetera::discovery_client::{self, DiscoveryError};

use crate::error::{CtlError, CtlResult, EXIT_BAD_CONNECTION};
use crate::printer::out;

#[derive(Subcommand, Debug)]
pub(crate) enum DiscoveryCommand {
    /// Prints a new discovery URL for a cluster of --size members
    New {
        /// Number of members the new cluster will have
        #[arg(long, default_value_t = 3)]
        size: u64,
        /// Base URL of the discovery service
        #[arg(long, default_value = "http://127.0.0.1:8087")]
        discovery_endpoint: String,
    },
}

pub(crate) async fn run(cmd: DiscoveryCommand) -> CtlResult<()> {
    let DiscoveryCommand::New {
        size,
        discovery_endpoint,
    } = cmd;
    if size == 0 {
        return Err(CtlError::bad_args("--size must be at least 1"));
    }
    match discovery_client::new_token(&discovery_endpoint, size).await {
        Ok(url) => {
            out(format!("{url}\n"));
            Ok(())
        }
        Err(e @ DiscoveryError::Unreachable(_)) => {
            Err(CtlError::new(EXIT_BAD_CONNECTION, e.to_string()))
        }
        Err(e) => Err(CtlError::error(e.to_string())),
    }
}
