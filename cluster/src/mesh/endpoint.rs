//! The node's one QUIC endpoint: server and client on one UDP socket, mTLS with the cluster CA.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{EndpointConfig, TransportConfig, VarInt};

use super::config::{InvalidMeshConfig, MeshConfig};
#[cfg(feature = "testing")]
use super::faults::{FaultPlan, FaultySocket};
use crate::certs::tls::{client_config, server_config};
use crate::certs::{CertError, ClusterTrust, NodeCert};

/// Bytes a peer may have in flight on one stream before it must wait for us to read (ample
/// for a LAN's bandwidth-delay product).
pub(crate) const STREAM_WINDOW: usize = 2 << 20;
/// Stream windows kept free, beyond the data lanes and the control stream (which this node
/// may pause), for the streams it never pauses: signals and membership syncs.
const RESERVED_WINDOWS: usize = 4;

/// Bytes a peer may have in flight on a connection with `lanes` data lanes, all streams
/// together. QUIC returns connection credit only as the application reads, so if every
/// pausable stream is paused with a full window, this still leaves room for signals: a DOWN
/// or a reply is never stuck behind paused lanes.
pub(crate) fn connection_window(lanes: usize) -> usize {
    (lanes + 1 + RESERVED_WINDOWS) * STREAM_WINDOW
}

/// ALPN protocol id of the mesh.
pub(crate) const ALPN: &[u8] = b"understudy/1";

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The certificates do not make a valid TLS configuration.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] CertError),
    /// The address could not be bound.
    #[error(
        "cannot bind the mesh to {addr}: {source}; is another node (or process) using that port?"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The mesh configuration does not make sense.
    #[error(transparent)]
    Config(#[from] InvalidMeshConfig),
    /// quinn rejected the configuration, or there is no async runtime.
    #[error("QUIC setup failed")]
    Quic(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn quic(e: impl std::error::Error + Send + Sync + 'static) -> EndpointError {
    EndpointError::Quic(Box::new(e))
}

/// What tests inject into the socket path: a fault plan and a kill switch. Without the
/// `testing` feature the socket is quinn's own, untouched.
#[derive(Default)]
pub(crate) struct Faults {
    #[cfg(feature = "testing")]
    pub(crate) plan: Option<FaultPlan>,
    #[cfg(feature = "testing")]
    pub(crate) silenced: Arc<std::sync::atomic::AtomicBool>,
}

fn transport(cfg: &MeshConfig) -> Result<Arc<TransportConfig>, EndpointError> {
    let mut t = TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(cfg.idle_timeout).map_err(quic)?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(cfg.keep_alive));
    // Before the Hello the peer's lane count is unknown: room for the most a Hello may
    // declare, the signal stream and a spare. Each connection then lowers it to what the
    // two sides agreed (see `Mesh::install`).
    t.max_concurrent_uni_streams(VarInt::from_u32(64 + 2));
    t.max_concurrent_bidi_streams(VarInt::from_u32(16));
    // Generous windows: the mesh is a LAN link carrying many small frames.
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW as u32));
    // Before the Hello only the control stream is read; `Mesh::install` widens the window
    // to the agreed lane count.
    t.receive_window(VarInt::from_u32(connection_window(0) as u32));
    t.send_window(connection_window(64) as u64);
    t.datagram_receive_buffer_size(Some(1024 * 1024));
    Ok(Arc::new(t))
}

/// Builds and binds the endpoint.
pub(crate) fn bind(
    addr: SocketAddr,
    cert: &NodeCert,
    trust: &ClusterTrust,
    cfg: &MeshConfig,
    faults: Faults,
) -> Result<quinn::Endpoint, EndpointError> {
    let transport = transport(cfg)?;

    let mut server_tls = server_config(cert, trust)?;
    server_tls.alpn_protocols = vec![ALPN.to_vec()];
    server_tls.max_early_data_size = 0;
    let server_crypto = QuicServerConfig::try_from(server_tls).map_err(quic)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());

    let mut client_tls = client_config(cert, trust)?;
    client_tls.alpn_protocols = vec![ALPN.to_vec()];
    client_tls.enable_early_data = false;
    let client_crypto = QuicClientConfig::try_from(client_tls).map_err(quic)?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);

    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| EndpointError::Bind { addr, source })?;
    let runtime = quinn::default_runtime().ok_or_else(|| {
        quic(std::io::Error::other(
            "no async runtime: start the node inside a tokio runtime",
        ))
    })?;
    let udp = runtime
        .wrap_udp_socket(socket)
        .map_err(|source| EndpointError::Bind { addr, source })?;
    #[cfg(feature = "testing")]
    let udp: Arc<dyn quinn::AsyncUdpSocket> = Arc::new(
        FaultySocket::new(udp, faults.plan, faults.silenced)
            .map_err(|source| EndpointError::Bind { addr, source })?,
    );
    #[cfg(not(feature = "testing"))]
    let _ = faults;
    let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        Some(server),
        udp,
        runtime,
    )
    .map_err(quic)?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}
