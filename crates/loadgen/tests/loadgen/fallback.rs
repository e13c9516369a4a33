//! A stand-in for the gateway's fallback, so that the failover scenario is tested against what
//! it is meant to show: each request goes to the primary, and to the secondary when the primary
//! answers 5xx or cannot be reached; the answer names the upstream that served it in
//! `x-mcp-upstream`, as the gateway does. HTTP/1.1 with keep-alive and `Content-Length` bodies
//! only, which is all the loadgen sends; an answer, a stream included, is read whole and relayed
//! at once (the loadgen judges a stream by its bytes, not their timing).

use std::sync::Arc;

use bytes::Bytes;
use mcp_loadgen::target::UPSTREAM_HEADER;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

/// A running stand-in.
pub struct FallbackGateway {
    /// Its root URL, where `/health` and `/v1/...` live.
    pub root: String,
}

struct Upstreams {
    client: reqwest::Client,
    /// Tried in this order.
    ordered: [(&'static str, String); 2],
}

/// One answer to relay.
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    upstream: Option<&'static str>,
    body: Bytes,
}

impl FallbackGateway {
    /// In front of the mocks at these root URLs, named `primary` and `secondary`.
    pub async fn spawn(primary: &str, secondary: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        let upstreams = Arc::new(Upstreams {
            client: reqwest::Client::new(),
            ordered: [
                ("primary", primary.to_owned()),
                ("secondary", secondary.to_owned()),
            ],
        });
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&upstreams)));
            }
        });
        Self { root }
    }
}

/// Serves the requests of one connection until the client closes it.
async fn serve(socket: TcpStream, upstreams: Arc<Upstreams>) {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    while let Some((path, body)) = read_request(&mut reader).await {
        let answer = if path == "/health" {
            Answer {
                status: StatusCode::OK,
                content_type: None,
                upstream: None,
                body: Bytes::new(),
            }
        } else {
            upstreams.forward(&path, body).await
        };
        if writer.write_all(&answer.encode()).await.is_err() {
            return;
        }
    }
}

/// The path and body of the next request; `None` once the connection is closed.
async fn read_request(reader: &mut BufReader<OwnedReadHalf>) -> Option<(String, Bytes)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some((path, body.into()))
}

impl Upstreams {
    async fn forward(&self, path: &str, body: Bytes) -> Answer {
        for (name, root) in &self.ordered {
            let sent = self
                .client
                .post(format!("{root}{path}"))
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let Ok(response) = sent else { continue };
            if response.status().is_server_error() {
                continue;
            }
            let status = response.status();
            let content_type = response.headers().get(CONTENT_TYPE).cloned();
            let Ok(body) = response.bytes().await else {
                continue;
            };
            return Answer {
                status,
                content_type,
                upstream: Some(name),
                body,
            };
        }
        Answer {
            status: StatusCode::BAD_GATEWAY,
            content_type: Some(HeaderValue::from_static("application/json")),
            upstream: None,
            body: Bytes::from_static(br#"{"error":{"message":"every upstream failed","type":"server_error","param":null,"code":null}}"#),
        }
    }
}

impl Answer {
    fn encode(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {}\r\ncontent-length: {}\r\n",
            self.status,
            self.body.len()
        );
        if let Some(content_type) = &self.content_type {
            head.push_str(&format!(
                "content-type: {}\r\n",
                content_type.to_str().unwrap()
            ));
        }
        if let Some(upstream) = self.upstream {
            head.push_str(&format!("{UPSTREAM_HEADER}: {upstream}\r\n"));
        }
        head.push_str("\r\n");
        let mut encoded = head.into_bytes();
        encoded.extend_from_slice(&self.body);
        encoded
    }
}
