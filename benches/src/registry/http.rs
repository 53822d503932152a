//! A minimal HTTP/1.1 client for etcd's JSON gateway: one keep-alive connection, one request
//! at a time, `POST` with a JSON body, `Content-Length` or chunked answers.
//!
//! The benchmark gives each etcd writer a connection of its own, so a request's latency is
//! etcd's (and loopback's), not a client pool's. A full HTTP stack (hyper) would add nothing
//! here but dependencies and its own per-request cost.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The largest answer accepted (etcd's answers here are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// One keep-alive HTTP/1.1 connection to one server.
pub(crate) struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
    line: String,
}

/// A failed request: the connection broke, the answer was not HTTP, or the status was not 200.
#[derive(Debug)]
pub(crate) enum HttpError {
    Io(io::Error),
    Status(u16, String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Status(code, body) => write!(f, "HTTP {code}: {body}"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Http {
    /// A client of `addr`; it connects on the first request (and again after a failure).
    pub(crate) fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            conn: None,
            request: Vec::with_capacity(512),
            line: String::new(),
        }
    }

    /// Drops the connection (after a request given up half-way: its answer may still come).
    pub(crate) fn reset(&mut self) {
        self.conn = None;
    }

    /// `POST path` with a JSON `body`; the answer's body if the status is 200. Any failure
    /// drops the connection (the next request opens a new one).
    pub(crate) async fn post(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, HttpError> {
        let result = self.exchange(path, body).await;
        if result.is_err() {
            self.conn = None;
        }
        let (status, close, answer) = result?;
        if close {
            self.conn = None;
        }
        if status != 200 {
            return Err(HttpError::Status(
                status,
                String::from_utf8_lossy(&answer).into_owned(),
            ));
        }
        Ok(answer)
    }

    async fn exchange(&mut self, path: &str, body: &[u8]) -> io::Result<(u16, bool, Vec<u8>)> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                self.addr,
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body);
        conn.get_mut().write_all(&self.request).await?;

        // Status line, then headers up to the blank line.
        let line = &mut self.line;
        line.clear();
        if conn.read_line(line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("not an HTTP status line"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            if conn.read_line(line).await? == 0 {
                return Err(bad("the headers ended early"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                return Err(bad("a header without a colon"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad("a bad Content-Length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }

        let mut answer = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(line).await?;
                let size = usize::from_str_radix(
                    line.trim_end().split(';').next().unwrap_or("").trim(),
                    16,
                )
                .map_err(|_| bad("a bad chunk size"))?;
                if answer.len() + size > MAX_BODY {
                    return Err(bad("the answer is too large"));
                }
                let start = answer.len();
                answer.resize(start + size, 0);
                conn.read_exact(&mut answer[start..]).await?;
                line.clear();
                conn.read_line(line).await?; // the CRLF after the chunk (or the trailer's end)
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(bad("the answer is too large"));
            }
            answer.resize(n, 0);
            conn.read_exact(&mut answer).await?;
        } else {
            // No length: the body runs to the end of the connection.
            AsyncReadExt::take(&mut *conn, MAX_BODY as u64)
                .read_to_end(&mut answer)
                .await?;
            close = true;
        }
        Ok((status, close, answer))
    }
}
