//! `mcp-mock-upstream healthcheck`: a tiny blocking HTTP/1.1 GET, so that a container image
//! without curl can probe the mock as its HEALTHCHECK. Healthy means a 200 within the deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Where the probe looks by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081/health";
/// The whole probe's deadline.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("unsupported URL {0:?}: expected http://host[:port][/path]")]
    BadUrl(String),
    /// Name resolution, connection, or I/O failed.
    #[error("request failed: {0}")]
    Io(#[from] std::io::Error),
    /// The deadline passed.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The server answered something other than 200.
    #[error("unhealthy answer: {0:?}")]
    Unhealthy(String),
}

/// GETs `url` and succeeds if it answers 200 within `timeout`.
pub fn probe(url: &str, timeout: Duration) -> Result<(), HealthcheckError> {
    let deadline = Instant::now() + timeout;
    let (authority, path) = split_url(url)?;
    let address = resolve(authority)?;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or(HealthcheckError::TimedOut(timeout))
    };
    let mut stream = TcpStream::connect_timeout(&address, remaining()?)?;
    stream.set_write_timeout(Some(remaining()?))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::with_capacity(64);
    let mut buffer = [0_u8; 256];
    // The status line is all that matters.
    while !head.windows(2).any(|pair| pair == b"\r\n") && head.len() < 1024 {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
            Err(error) if is_timeout(&error) => return Err(HealthcheckError::TimedOut(timeout)),
            Err(error) => return Err(error.into()),
        }
    }
    let status_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ => Err(HealthcheckError::Unhealthy(status_line)),
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// `http://host[:port][/path]` into the authority and the path (default `/`).
fn split_url(url: &str) -> Result<(&str, &str), HealthcheckError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HealthcheckError::BadUrl(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HealthcheckError::BadUrl(url.to_owned()));
    }
    Ok((authority, path))
}

fn resolve(authority: &str) -> Result<SocketAddr, HealthcheckError> {
    // A bare host (or a bracketed IPv6 address without a port) means port 80.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !port.is_empty() && !port.contains(']') && !host.is_empty());
    let with_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| HealthcheckError::BadUrl(authority.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8081/health").unwrap(),
            ("127.0.0.1:8081", "/health")
        );
        assert_eq!(split_url("http://[::1]:9").unwrap(), ("[::1]:9", "/"));
        assert!(split_url("https://example.test/").is_err());
        assert!(split_url("http:///health").is_err());
    }

    #[test]
    fn an_address_without_port_uses_port_80() {
        assert_eq!(resolve("127.0.0.1").unwrap().port(), 80);
        assert_eq!(resolve("[::1]").unwrap().port(), 80);
        assert_eq!(resolve("[::1]:8081").unwrap().port(), 8081);
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        assert!(probe(&url, TIMEOUT).is_err());
    }
}
