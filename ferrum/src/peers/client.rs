//! An outgoing session to a peer server: TCP or TLS, directly or through a SOCKS5 proxy (Tor),
//! newline-delimited JSON-RPC requests with a deadline each, answers of bounded size.
//!
//! A peer's certificate is not checked against a name (peers are commonly self-signed, and
//! nothing is entrusted to the session: its answers are checked against the node's chain), but
//! the handshake's signatures are.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest answer taken from a peer (a long `server.peers.subscribe` list fits).
const MAX_LINE: usize = 1 << 20;

/// Any stream the session runs over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("proxy: {0}")]
    Proxy(#[from] tokio_socks::Error),
    #[error("{0} timed out")]
    Timeout(String),
    #[error("{method}: error {error}")]
    Rpc { method: String, error: Value },
    #[error("{0}")]
    Protocol(String),
}

/// Where and how to reach a peer.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    /// The SOCKS5 proxy's host and the ports to try it on, when the peer is reached through it.
    pub(crate) proxy: Option<(&'a str, &'a [u16])>,
}

/// A session to a peer.
pub(crate) struct PeerClient {
    /// The peer's address, when reached directly (not through a proxy).
    pub(crate) remote: Option<std::net::IpAddr>,
    reader: BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>,
    writer: tokio::io::WriteHalf<Box<dyn Stream>>,
    next_id: u64,
    timeout: Duration,
}

impl PeerClient {
    /// Connects; each request then has `timeout` to be answered.
    pub(crate) async fn connect(target: &Target<'_>, timeout: Duration) -> Result<PeerClient, ClientError> {
        let what = format!("connecting to {}:{}", target.host, target.port);
        let (stream, remote) =
            tokio::time::timeout(timeout, open(target)).await.map_err(|_| ClientError::Timeout(what))??;
        let (r, w) = tokio::io::split(stream);
        Ok(PeerClient { remote, reader: BufReader::new(r), writer: w, next_id: 0, timeout })
    }

    /// Sends a request and waits for its answer; notifications meanwhile are skipped.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut line = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let deadline = self.timeout;
        tokio::time::timeout(deadline, async {
            self.writer.write_all(&line).await?;
            self.writer.flush().await?;
            loop {
                let message = self.read_line().await?;
                if message.get("id").and_then(Value::as_u64) != Some(id) {
                    continue;
                }
                if let Some(error) = message.get("error").filter(|e| !e.is_null()) {
                    return Err(ClientError::Rpc { method: method.to_string(), error: error.clone() });
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
        })
        .await
        .map_err(|_| ClientError::Timeout(method.to_string()))?
    }

    async fn read_line(&mut self) -> Result<Value, ClientError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await?;
        if n == 0 {
            return Err(ClientError::Protocol("connection closed".into()));
        }
        if buf.len() > MAX_LINE {
            return Err(ClientError::Protocol(format!("answer over {MAX_LINE} bytes")));
        }
        serde_json::from_slice(&buf).map_err(|e| ClientError::Protocol(format!("not JSON: {e}")))
    }
}

/// The stream to a peer, and its address when reached directly.
async fn open(target: &Target<'_>) -> Result<(Box<dyn Stream>, Option<std::net::IpAddr>), ClientError> {
    let tcp = match target.proxy {
        Some((proxy_host, ports)) => {
            let mut last = None;
            let mut found = None;
            for port in ports {
                match tokio_socks::tcp::Socks5Stream::connect((proxy_host, *port), (target.host, target.port)).await {
                    Ok(s) => {
                        found = Some(s.into_inner());
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match (found, last) {
                (Some(s), _) => s,
                (None, Some(e)) => return Err(e.into()),
                (None, None) => return Err(ClientError::Protocol("no proxy port".into())),
            }
        }
        None => tokio::net::TcpStream::connect((target.host, target.port)).await?,
    };
    let _ = tcp.set_nodelay(true);
    let remote = if target.proxy.is_some() { None } else { tcp.peer_addr().ok().map(|a| a.ip()) };
    if !target.tls {
        return Ok((Box::new(tcp), remote));
    }
    let name = rustls::pki_types::ServerName::try_from(target.host.to_string())
        .map_err(|e| ClientError::Protocol(format!("{}: {e}", target.host)))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?).connect(name, tcp).await?;
    Ok((Box::new(tls), remote))
}

/// TLS to peers: any certificate, its handshake signatures checked.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Protocol(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts a peer's certificate whatever it names or whoever signed it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
