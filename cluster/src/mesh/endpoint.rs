//! The node's one QUIC endpoint: server and client on one UDP socket, mTLS with the cluster CA.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{EndpointConfig, TransportConfig, VarInt};

use super::config::MeshConfig;
use super::faults::{FaultPlan, FaultySocket};
use crate::certs::tls::{client_config, server_config};
use crate::certs::{CertError, ClusterTrust, NodeCert};

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
    /// quinn rejected the configuration.
    #[error("QUIC setup failed: {0}")]
    Quic(String),
}

fn transport(cfg: &MeshConfig) -> Result<Arc<TransportConfig>, EndpointError> {
    let mut t = TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(cfg.idle_timeout)
        .map_err(|e| EndpointError::Quic(e.to_string()))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(cfg.keep_alive));
    // Lanes plus headroom; bi streams: control plus a few membership syncs.
    t.max_concurrent_uni_streams(VarInt::from_u32(cfg.lanes as u32 + 4));
    t.max_concurrent_bidi_streams(VarInt::from_u32(16));
    // Generous windows: the mesh is a LAN link carrying many small frames.
    t.stream_receive_window(VarInt::from_u32(8 * 1024 * 1024));
    t.receive_window(VarInt::from_u32(32 * 1024 * 1024));
    t.send_window(32 * 1024 * 1024);
    t.datagram_receive_buffer_size(Some(1024 * 1024));
    Ok(Arc::new(t))
}

/// Builds and binds the endpoint.
pub(crate) fn bind(
    addr: SocketAddr,
    cert: &NodeCert,
    trust: &ClusterTrust,
    cfg: &MeshConfig,
    faults: Option<FaultPlan>,
    silenced: Arc<std::sync::atomic::AtomicBool>,
) -> Result<quinn::Endpoint, EndpointError> {
    let transport = transport(cfg)?;

    let mut server_tls = server_config(cert, trust)?;
    server_tls.alpn_protocols = vec![ALPN.to_vec()];
    server_tls.max_early_data_size = 0;
    let server_crypto =
        QuicServerConfig::try_from(server_tls).map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());

    let mut client_tls = client_config(cert, trust)?;
    client_tls.alpn_protocols = vec![ALPN.to_vec()];
    client_tls.enable_early_data = false;
    let client_crypto =
        QuicClientConfig::try_from(client_tls).map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);

    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| EndpointError::Bind { addr, source })?;
    let runtime = quinn::default_runtime().ok_or_else(|| {
        EndpointError::Quic("no async runtime (start the node inside tokio)".into())
    })?;
    let udp = runtime
        .wrap_udp_socket(socket)
        .map_err(|source| EndpointError::Bind { addr, source })?;
    let udp: Arc<dyn quinn::AsyncUdpSocket> = Arc::new(
        FaultySocket::new(udp, faults, silenced)
            .map_err(|source| EndpointError::Bind { addr, source })?,
    );
    let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        Some(server),
        udp,
        runtime,
    )
    .map_err(|e| EndpointError::Quic(e.to_string()))?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}
