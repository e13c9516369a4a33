//! A stand-in gateway that records the `Authorization` header of every `/v1` request and
//! answers each with an empty 200 (and `/health` with a 200): what the loadgen presents, byte
//! for byte, including no header at all. HTTP/1.1 with keep-alive and `Content-Length` bodies
//! only, which is all the loadgen sends.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// A running recorder.
pub struct Recorder {
    pub root: String,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Recorder {
    pub async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&recorded)));
            }
        });
        Self { root, seen }
    }

    /// The `Authorization` value of each `/v1` request so far, in arrival order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves the requests of one connection until the client closes it.
async fn serve(socket: TcpStream, seen: Arc<Mutex<Vec<Option<String>>>>) {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let is_api = line
            .split_whitespace()
            .nth(1)
            .is_some_and(|path| path.starts_with("/v1/"));
        let mut length = 0;
        let mut authorization = None;
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            } else if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        if is_api {
            seen.lock().unwrap().push(authorization);
        }
        if writer.write_all(ANSWER).await.is_err() {
            return;
        }
    }
}
