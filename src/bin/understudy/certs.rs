//! `understudy certs init|issue`: a cluster CA and node certificates as PEM files.
//!
//! The files are the ones [`understudy::cluster::certs`] reads: `ca.pem` (every node),
//! `ca.key` (only where certificates are issued), and `<node>.pem` + `<node>.key` per node.
//! Nothing is ever overwritten: a replaced `ca.key` would orphan every certificate it signed.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use understudy::cluster::certs::{
    ClusterCa, DEFAULT_CA_VALIDITY_DAYS, DEFAULT_NODE_VALIDITY_DAYS, cluster_san, file_names,
    node_san,
};
use understudy::cluster::identity::{ClusterName, NodeName};

use crate::CmdResult;

#[derive(Debug, Subcommand)]
pub(crate) enum Certs {
    /// Make a new cluster CA: writes ca.pem (give it to every node) and ca.key (keep it safe).
    Init {
        /// The cluster's name: 1-63 characters of a-z, 0-9 and '-', starting with a letter.
        #[arg(long, value_name = "NAME")]
        cluster: ClusterName,
        /// The directory to write ca.pem and ca.key into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// How many days the CA stays valid.
        #[arg(long, default_value_t = DEFAULT_CA_VALIDITY_DAYS,
              value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
    },
    /// Issue a node certificate signed by the CA: writes NAME.pem and NAME.key.
    Issue {
        /// The node's name, unique in the cluster: 1-63 characters of a-z, 0-9 and '-',
        /// starting with a letter.
        name: NodeName,
        /// The directory to write NAME.pem and NAME.key into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The directory holding ca.pem and ca.key [default: the --dir directory].
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// How many days the certificate stays valid.
        #[arg(long, default_value_t = DEFAULT_NODE_VALIDITY_DAYS,
              value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
    },
}

pub(crate) fn run(cmd: Certs) -> CmdResult {
    match cmd {
        Certs::Init { cluster, dir, days } => init(&cluster, &dir, days),
        Certs::Issue {
            name,
            dir,
            ca_dir,
            days,
        } => issue(&name, &dir, ca_dir.as_deref().unwrap_or(&dir), days),
    }
}

fn init(cluster: &ClusterName, dir: &Path, days: u32) -> CmdResult {
    let ca = ClusterCa::generate_valid_for(cluster, days)?;
    ca.write_to(dir)?;
    println!("created the CA of cluster `{cluster}` (valid {days} days):");
    println!(
        "  {}  the CA certificate: every node needs it",
        dir.join(file_names::CA_CERT).display()
    );
    println!(
        "  {}  the CA private key (mode 0600): keep it safe; only issuing needs it",
        dir.join(file_names::CA_KEY).display()
    );
    println!("next: understudy certs issue NODE --dir {}", dir.display());
    Ok(())
}

fn issue(name: &NodeName, dir: &Path, ca_dir: &Path, days: u32) -> CmdResult {
    if name.as_str() == "ca" && dir == ca_dir {
        return Err(format!(
            "a node named `ca` would write its files over the CA's {} and {} in {}; \
             pass --dir to put it elsewhere",
            file_names::CA_CERT,
            file_names::CA_KEY,
            dir.display()
        )
        .into());
    }
    let ca = ClusterCa::load_from(ca_dir)?;
    let cert = ca.issue_valid_for(name, days)?;
    cert.write_to(dir)?;
    let cluster = ca.cluster();
    println!("issued the certificate of node `{name}` in cluster `{cluster}` (valid {days} days):");
    println!("  {}", dir.join(file_names::node_cert(name)).display());
    println!(
        "  {}  (mode 0600)",
        dir.join(file_names::node_key(name)).display()
    );
    println!(
        "names: {} (any member), {} (this node)",
        cluster_san(cluster),
        node_san(cluster, name)
    );
    Ok(())
}
