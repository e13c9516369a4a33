//! Bad input through the real binaries: a table of malformed, oversized, slow and odd
//! requests sent to a running `mcp-proxy` in front of a running `mcp-mock-upstream`. Each row
//! says what the documentation promises for it: the status, the error body in the client's
//! API's shape (OpenAI's `{"error":{"message","type","param","code"}}`, Anthropic's
//! `{"type":"error","error":{"type","message"}}` under `/v1/messages`) with its `code`, the
//! `x-mcp-request-id` header, whether the upstream saw the request, and the series of
//! `mcp_server_errors_total` it is counted in. After the table the gateway must still answer a
//! normal request, and the scrape must hold exactly the table's counts.
//!
//! Most rows go through reqwest, as a client would send them. Rows reqwest cannot send as
//! meant (a thousand headers, a body that stops arriving, 10 MB pushed at a gateway that
//! answers before reading it) are written to a socket.
//!
//! Every row is checked and every mismatch collected before the test fails, so that one
//! unexpected answer does not hide the others.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The one model the gateway is configured with.
const MODEL: &str = "gpt-4o-mini";
/// `server.max_body_bytes`' default.
const MAX_BODY_BYTES: usize = 10_485_760;
/// Endpoint label values of `mcp_server_errors_total`.
const CHAT: &str = "/v1/chat/completions";
const MESSAGES: &str = "/v1/messages";
/// Errors answered before routing (an unknown path; a head over `server.max_header_bytes`,
/// refused in the middleware that runs before the router).
const UNMATCHED: &str = "unmatched";

// The process harness below is shared with `secrets`.

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A workspace binary, built next to this crate's own (`cargo build --workspace --bins`).
pub(crate) fn workspace_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .parent()
        .expect("binaries live in a directory")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A command for one of the workspace's binaries, with none of the settings of the
/// environment the tests run in: only what a test sets reaches the process.
pub(crate) fn clean_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("MCP")
            || name_text.starts_with("MOCK_")
            || name_text.ends_with("_API_KEY")
            || name == "RUST_LOG"
        {
            command.env_remove(&name);
        }
    }
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

/// A child process whose stdout and stderr are read to the end on threads of their own (a
/// full pipe would stall its logging), and which is killed when dropped, however the test
/// ends.
pub(crate) struct Process {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// Everything a process wrote.
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Process {
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = child.stdout.take().map(|p| drain(Box::new(p)));
        let stderr = child.stderr.take().map(|p| drain(Box::new(p)));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; what it wrote.
    pub(crate) async fn terminate(mut self, limit: Duration) -> Output {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        let started = Instant::now();
        loop {
            match self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                Some(status) => {
                    assert!(status.success(), "exit status {status} after SIGTERM");
                    break;
                }
                None if started.elapsed() > limit => {
                    let _ = self.child.kill();
                    panic!("the process did not exit within {limit:?} of SIGTERM");
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.output()
    }

    /// Kills the process; what it wrote.
    pub(crate) fn kill(mut self) -> Output {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
    }

    fn output(&mut self) -> Output {
        let text = |handle: Option<JoinHandle<Vec<u8>>>| {
            handle
                .map(|h| h.join().expect("the pipe reader does not panic"))
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        };
        Output {
            stdout: text(self.stdout.take()),
            stderr: text(self.stderr.take()),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 200, for at most 20 s.
pub(crate) async fn wait_until_serving(client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url} did not answer 200 within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An answer, from either kind of client.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a row's request is sent.
enum Request {
    /// Through reqwest. `content_type` is the header's value, or none at all.
    Client {
        method: reqwest::Method,
        path: &'static str,
        content_type: Option<&'static str>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Written to a socket as it is: `head`, then `body` while the answer is read. The
    /// socket's write side stays open until the answer is in, so a body shorter than its
    /// `Content-Length` is a client that stopped sending, not one that hung up.
    Raw { head: String, body: Vec<u8> },
}

impl Request {
    /// The same request with one more header.
    fn with_header(mut self, name: &str, value: String) -> Self {
        if let Request::Client { headers, .. } = &mut self {
            headers.push((name.to_owned(), value));
        }
        self
    }

    /// The same request with another `Content-Type`, or none.
    fn with_content_type(mut self, value: Option<&'static str>) -> Self {
        if let Request::Client { content_type, .. } = &mut self {
            *content_type = value;
        }
        self
    }
}

/// The error body a row expects.
enum Shape {
    /// `{"error":{"message","type","param","code"}}` with this `code` and `param` (`None`:
    /// JSON null).
    OpenAi {
        code: Option<&'static str>,
        param: Option<&'static str>,
    },
    /// `{"type":"error","error":{"type","message"}}` with this `type`.
    Anthropic { kind: &'static str },
    /// No body at all (the HTTP layer's own refusal).
    Empty,
}

struct Row {
    name: &'static str,
    request: Request,
    expect: Expect,
}

fn row(name: &'static str, request: Request, expect: Expect) -> Row {
    Row {
        name,
        request,
        expect,
    }
}

/// What the documentation promises for a row.
struct Expect {
    status: u16,
    shape: Shape,
    /// What the error's message must contain.
    says: &'static str,
    /// The upstream saw the request and the answer is its own, passed through.
    forwarded: bool,
    /// The `(error_type, endpoint)` series of `mcp_server_errors_total` the row is counted
    /// in; `None` when the gateway's application never sees the request.
    counted: Option<(&'static str, &'static str)>,
}

/// Refused by the gateway itself in OpenAI's shape, its `code` the `error_type` it is counted
/// as on `endpoint`.
fn gateway(status: u16, error_type: &'static str, endpoint: &'static str) -> Expect {
    Expect {
        status,
        shape: Shape::OpenAi {
            code: Some(error_type),
            param: None,
        },
        says: "",
        forwarded: false,
        counted: Some((error_type, endpoint)),
    }
}

/// Refused by the gateway itself in Anthropic's shape with error type `kind`.
fn anthropic(
    status: u16,
    kind: &'static str,
    error_type: &'static str,
    endpoint: &'static str,
) -> Expect {
    Expect {
        shape: Shape::Anthropic { kind },
        ..gateway(status, error_type, endpoint)
    }
}

/// Forwarded, and the upstream's 4xx passed through unchanged, in the upstream's words
/// (the mock's OpenAI-shaped errors have a null `code`); counted as `upstream_client_error`.
fn upstream(status: u16) -> Expect {
    Expect {
        status,
        shape: Shape::OpenAi {
            code: None,
            param: None,
        },
        says: "",
        forwarded: true,
        counted: Some(("upstream_client_error", CHAT)),
    }
}

impl Expect {
    fn says(mut self, says: &'static str) -> Self {
        self.says = says;
        self
    }

    fn param(mut self, name: &'static str) -> Self {
        if let Shape::OpenAi { param, .. } = &mut self.shape {
            *param = Some(name);
        }
        self
    }
}

fn post_json(path: &'static str, body: impl Into<Vec<u8>>) -> Request {
    Request::Client {
        method: reqwest::Method::POST,
        path,
        content_type: Some("application/json"),
        headers: Vec::new(),
        body: body.into(),
    }
}

fn get(path: &'static str) -> Request {
    Request::Client {
        method: reqwest::Method::GET,
        path,
        content_type: None,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// A chat request whose `messages` is `messages`, given as JSON text.
fn chat_with(messages: &str) -> Request {
    post_json(
        CHAT,
        format!(r#"{{"model":"{MODEL}","messages":{messages}}}"#),
    )
}

fn raw_post(path: &str, extra_headers: &str, body: Vec<u8>) -> Request {
    Request::Raw {
        head: format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             {extra_headers}\r\n"
        ),
        body,
    }
}

/// A body just over `server.max_body_bytes`: a valid request with a 10 MiB message.
fn ten_megabytes() -> Vec<u8> {
    let mut body =
        format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":""#).into_bytes();
    body.resize(body.len() + MAX_BODY_BYTES, b'a');
    body.extend_from_slice(br#""}]}"#);
    assert!(body.len() > MAX_BODY_BYTES);
    body
}

/// `body` in chunked transfer coding, 1 MiB a chunk: a body whose size is not declared, so
/// that the gateway has to count it as it arrives.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1024);
    for chunk in body.chunks(1 << 20) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// `[[[...]]]`, `depth` deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn table() -> Vec<Row> {
    let big = ten_megabytes();
    let hi = r#"[{"role":"user","content":"hi"}]"#;
    let plain = format!(r#"{{"model":"{MODEL}","messages":{hi}}}"#);
    // Right-to-left marks, a right-to-left override and combining accents: valid UTF-8 and
    // valid JSON, so only the model check can refuse it.
    let odd_model = "gpt\u{200f}-4o\u{202e}-mini\u{0301}\u{0308}";
    let mut invalid_utf8_model = br#"{"model":"gpt-4o"#.to_vec();
    invalid_utf8_model.extend_from_slice(b"\xff\xfe");
    invalid_utf8_model.extend_from_slice(format!(r#"","messages":{hi}}}"#).as_bytes());
    let mut invalid_utf8_content =
        format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"a"#).into_bytes();
    invalid_utf8_content.extend_from_slice(b"\xff\xfe\xc3");
    invalid_utf8_content.extend_from_slice(br#"b"}]}"#);
    let large_header = "a".repeat(100 * 1024);
    let many_headers: String = (0..1000)
        .map(|i| format!("x-filler-{i}: {i}\r\n"))
        .collect();
    let stall = "content-length: 100\r\n";
    let stalled_body = br#"{"model":""#.to_vec();

    vec![
        row(
            "invalid JSON",
            post_json(CHAT, r#"{"model":"#),
            gateway(400, "invalid_request", CHAT).says("could not parse"),
        ),
        row(
            "a JSON array, not an object",
            post_json(CHAT, format!(r#"["{MODEL}"]"#)),
            gateway(400, "invalid_request", CHAT).says("must be a JSON object"),
        ),
        // The field is named in the message; `param` stays null.
        row(
            "model is a number",
            post_json(CHAT, format!(r#"{{"model":42,"messages":{hi}}}"#)),
            gateway(400, "invalid_request", CHAT).says("`model`"),
        ),
        row(
            "stream is a string",
            post_json(
                CHAT,
                format!(r#"{{"model":"{MODEL}","stream":"yes","messages":{hi}}}"#),
            ),
            gateway(400, "invalid_request", CHAT).says("`stream`"),
        ),
        // The gateway does not read `messages` (README, Behaviour): the upstream judges it,
        // and its 4xx is passed through unchanged.
        row(
            "messages is a string",
            chat_with(r#""hi""#),
            upstream(400).param("messages").says("messages"),
        ),
        // `max_tokens` is read leniently (anything but a whole number reads as unset), but a
        // number past f64's range is not one serde_json can read at all: the body fails to
        // parse before the lenient reader sees a value.
        row(
            "max_tokens 1e400",
            post_json(
                CHAT,
                format!(r#"{{"model":"{MODEL}","max_tokens":1e400,"messages":{hi}}}"#),
            ),
            gateway(400, "invalid_request", CHAT).says("number out of range"),
        ),
        // An integer past u64 is read as a float (1e23), which the lenient reader takes as
        // unset: the request is forwarded with the default reservation, and the upstream
        // refuses the value (the mock caps max_tokens at 131072).
        row(
            "max_tokens 99999999999999999999999",
            post_json(
                CHAT,
                format!(
                    r#"{{"model":"{MODEL}","max_tokens":99999999999999999999999,"messages":{hi}}}"#
                ),
            ),
            upstream(400).param("max_tokens").says("max_tokens"),
        ),
        row(
            "invalid UTF-8 inside the model string",
            post_json(CHAT, invalid_utf8_model),
            gateway(400, "invalid_request", CHAT).says("could not parse"),
        ),
        // JSON text is UTF-8 (RFC 8259, 8.1): bytes that are not UTF-8 make a body that is not
        // JSON, which the gateway refuses itself (README, Behaviour: "a body that is not
        // JSON ... (400)"; docs/metrics.md: `invalid_request` for malformed JSON), wherever in
        // the body they are.
        row(
            "invalid UTF-8 inside a message's content",
            post_json(CHAT, invalid_utf8_content),
            gateway(400, "invalid_request", CHAT).says("could not parse"),
        ),
        // An escaped lone surrogate is allowed by JSON's grammar (RFC 8259, 8.2: what a
        // receiver makes of it is unspecified) and sits in a field the gateway does not read:
        // forwarded, and the upstream's refusal passed through.
        row(
            "a lone surrogate escaped in a message's content",
            chat_with(r#"[{"role":"user","content":"\ud800"}]"#),
            upstream(400).says("JSON"),
        ),
        // Echoed in the message as it was sent: valid UTF-8 in, valid UTF-8 out.
        row(
            "a model name with RTL marks and combining characters",
            post_json(
                CHAT,
                format!(r#"{{"model":"{odd_model}","messages":{hi}}}"#),
            ),
            gateway(404, "model_not_found", CHAT)
                .param("model")
                .says(odd_model),
        ),
        // The NUL is part of the name, not an end to it: not the configured model.
        row(
            "a NUL escaped as \\u0000 in the model name",
            post_json(
                CHAT,
                format!(r#"{{"model":"{MODEL}\u0000","messages":{hi}}}"#),
            ),
            gateway(404, "model_not_found", CHAT)
                .param("model")
                .says("does not exist"),
        ),
        row(
            "an empty body",
            post_json(CHAT, Vec::new()),
            gateway(400, "invalid_request", CHAT).says("empty"),
        ),
        row(
            "no Content-Type",
            post_json(CHAT, plain.clone()).with_content_type(None),
            gateway(415, "unsupported_media_type", CHAT).says("Content-Type"),
        ),
        row(
            "Content-Type text/plain",
            post_json(CHAT, plain.clone()).with_content_type(Some("text/plain")),
            gateway(415, "unsupported_media_type", CHAT).says("Content-Type"),
        ),
        // Refused on its declared length; the bytes are sent all the same, as a client that
        // does not wait for `100 Continue` sends them.
        row(
            "a 10 MB body with its Content-Length",
            raw_post(
                CHAT,
                &format!("content-length: {}\r\n", big.len()),
                big.clone(),
            ),
            gateway(413, "payload_too_large", CHAT).says("10485760"),
        ),
        // No declared length: refused once what arrived passes the limit.
        row(
            "a 10 MB chunked body",
            raw_post(CHAT, "transfer-encoding: chunked\r\n", chunked(&big)),
            gateway(413, "payload_too_large", CHAT).says("10485760"),
        ),
        // The gateway's peek skips the fields it does not read with serde_json's iterative
        // skipper, which has no depth limit and does not recurse: a valid body nested 1000
        // deep in `messages` is forwarded, and the upstream's parser (serde_json's 128
        // levels) refuses it with a 400 that is passed through. Neither process overflows
        // its stack; the table checks after each row that the gateway is still running.
        row(
            "messages nested 1000 deep",
            chat_with(&nested(1000)),
            upstream(400).says("JSON"),
        ),
        // A stream whose request has `stream_options` of its own is parsed into a tree to set
        // `include_usage`: there serde_json's recursion limit applies, in the gateway.
        row(
            "messages nested 1000 deep in a stream with stream_options",
            post_json(
                CHAT,
                format!(
                    r#"{{"model":"{MODEL}","stream":true,"stream_options":{{}},"messages":{}}}"#,
                    nested(1000)
                ),
            ),
            gateway(400, "invalid_request", CHAT).says("recursion limit exceeded"),
        ),
        row(
            "a whole body nested 1000 deep",
            post_json(CHAT, nested(1000)),
            gateway(400, "invalid_request", CHAT).says("must be a JSON object"),
        ),
        // Over `server.max_header_bytes` (32768) but under the HTTP layer's own 128 KiB: the
        // gateway's 431 in the API's shape, counted before routing.
        row(
            "a 100 KB header",
            post_json(CHAT, plain.clone()).with_header("x-filler", large_header.clone()),
            gateway(431, "headers_too_large", UNMATCHED).says("32768"),
        ),
        // The one exception to "every error in the API's shape, with a request id, counted":
        // actix-http refuses a head of more than 96 headers itself, with a bare 431 and no
        // body, before the application (and so the middleware that renders, identifies and
        // counts errors) sees the request, as README and docs/metrics.md say. The table then
        // goes on: the gateway keeps serving.
        row(
            "1000 headers",
            raw_post(
                CHAT,
                &format!("content-length: 2\r\n{many_headers}"),
                b"{}".into(),
            ),
            Expect {
                status: 431,
                shape: Shape::Empty,
                says: "",
                forwarded: false,
                counted: None,
            },
        ),
        // Declares 100 bytes, sends 10, then nothing (`server.body_timeout_secs` is 1 here).
        row(
            "a body that never finishes arriving",
            raw_post(CHAT, stall, stalled_body.clone()),
            gateway(408, "request_timeout", CHAT).says("did not arrive"),
        ),
        row(
            "an unknown path",
            post_json("/v1/chat/complete", plain.clone()),
            gateway(404, "not_found", UNMATCHED).says("/v1/chat/complete"),
        ),
        row(
            "GET on a POST endpoint",
            get(CHAT),
            gateway(405, "method_not_allowed", CHAT).says("GET"),
        ),
        // The same refusals on Anthropic's Messages API, in Anthropic's shape.
        row(
            "Messages: invalid JSON",
            post_json(MESSAGES, r#"{"model":"#),
            anthropic(400, "invalid_request_error", "invalid_request", MESSAGES)
                .says("could not parse"),
        ),
        row(
            "Messages: a model served only through the OpenAI API",
            post_json(
                MESSAGES,
                format!(r#"{{"model":"{MODEL}","max_tokens":8,"messages":{hi}}}"#),
            ),
            anthropic(404, "not_found_error", "model_not_found", MESSAGES).says("OpenAI API"),
        ),
        row(
            "Messages: a 10 MB body",
            raw_post(MESSAGES, &format!("content-length: {}\r\n", big.len()), big),
            anthropic(413, "request_too_large", "payload_too_large", MESSAGES).says("10485760"),
        ),
        row(
            "Messages: a 100 KB header",
            post_json(MESSAGES, "{}").with_header("x-filler", large_header),
            anthropic(431, "invalid_request_error", "headers_too_large", UNMATCHED).says("32768"),
        ),
        row(
            "Messages: a body that never finishes arriving",
            raw_post(MESSAGES, stall, stalled_body),
            anthropic(408, "invalid_request_error", "request_timeout", MESSAGES)
                .says("did not arrive"),
        ),
        row(
            "Messages: an unknown path below /v1/messages",
            post_json("/v1/messages/batches", "{}"),
            anthropic(404, "not_found_error", "not_found", UNMATCHED).says("/v1/messages/batches"),
        ),
        row(
            "Messages: GET",
            get(MESSAGES),
            anthropic(405, "invalid_request_error", "method_not_allowed", MESSAGES).says("GET"),
        ),
    ]
}

async fn send(client: &reqwest::Client, port: u16, request: Request) -> Result<Answer, String> {
    match request {
        Request::Client {
            method,
            path,
            content_type,
            headers,
            body,
        } => {
            let mut builder = client.request(method, format!("http://127.0.0.1:{port}{path}"));
            if let Some(content_type) = content_type {
                builder = builder.header("content-type", content_type);
            }
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            let response = builder
                .body(body)
                .send()
                .await
                .map_err(|e| format!("no answer: {e}"))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_owned(), value)
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("the body could not be read: {e}"))?
                .to_vec();
            Ok(Answer {
                status,
                headers,
                body,
            })
        }
        Request::Raw { head, body } => raw_exchange(port, head.into_bytes(), body).await,
    }
}

/// Writes `head` and `body` on a fresh connection while reading the answer. Write errors are
/// expected (the gateway may answer and close before reading everything) and ignored; the
/// answer is what counts.
async fn raw_exchange(port: u16, head: Vec<u8>, body: Vec<u8>) -> Result<Answer, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("could not connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&head).await;
        let _ = writer.write_all(&body).await;
        // Handed back, not dropped: dropping the write half would send FIN, and a stalled
        // body would look like a client that hung up.
        writer
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut reader))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?;
    writing.abort();
    drop(writing);
    answer
}

/// One HTTP/1.1 answer: its head, then `Content-Length` bytes of body, or everything to the
/// end of the connection when it declares none.
async fn read_answer(reader: &mut tokio::net::tcp::OwnedReadHalf) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the connection closed after {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let declared = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    loop {
        if declared.is_some_and(|len| body.len() >= len) {
            break;
        }
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// What is wrong with `answer`, against what was expected; empty when nothing is.
fn check(expect: &Expect, answer: &Answer) -> Vec<String> {
    let mut wrong = Vec::new();
    let body_text = String::from_utf8_lossy(&answer.body);
    if answer.status != expect.status {
        wrong.push(format!(
            "status {}, expected {}",
            answer.status, expect.status
        ));
    }
    // `primary`: the name of the upstream `--upstream` sets up.
    let served_by = answer.header("x-mcp-upstream");
    match (expect.forwarded, served_by) {
        (true, Some("primary")) | (false, None) => {}
        (true, other) => wrong.push(format!(
            "expected the upstream's answer, x-mcp-upstream is {other:?}"
        )),
        (false, Some(u)) => wrong.push(format!(
            "expected the gateway to refuse it itself, but upstream {u} answered"
        )),
    }
    if let Shape::Empty = expect.shape {
        if !answer.body.is_empty() {
            wrong.push(format!("expected no body, got {body_text:?}"));
        }
        if answer.header("x-mcp-request-id").is_some() {
            wrong.push("expected no x-mcp-request-id on the HTTP layer's refusal".into());
        }
        return wrong;
    }
    match answer.header("x-mcp-request-id") {
        Some(id)
            if id.len() == 36
                && id.starts_with("req_")
                && id[4..].bytes().all(|b| b.is_ascii_hexdigit()) => {}
        other => wrong.push(format!("x-mcp-request-id is {other:?}")),
    }
    if answer
        .header("content-type")
        .is_none_or(|t| !t.starts_with("application/json"))
    {
        wrong.push(format!(
            "content-type is {:?}",
            answer.header("content-type")
        ));
    }
    let body: Value = match serde_json::from_slice(&answer.body) {
        Ok(body) => body,
        Err(e) => {
            wrong.push(format!("the body is not JSON ({e}): {body_text:?}"));
            return wrong;
        }
    };
    match &expect.shape {
        Shape::OpenAi { code, param } => {
            let error = &body["error"];
            let mut keys: Vec<&str> = error
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            keys.sort_unstable();
            if keys != ["code", "message", "param", "type"]
                || body.as_object().map(|o| o.len()) != Some(1)
            {
                wrong.push(format!("not OpenAI's error shape: {body}"));
            }
            if !error["type"].is_string() {
                wrong.push(format!("error.type is not a string: {body}"));
            }
            if error["code"].as_str() != *code {
                wrong.push(format!(
                    "error.code is {}, expected {code:?}",
                    error["code"]
                ));
            }
            if error["param"].as_str() != *param {
                wrong.push(format!(
                    "error.param is {}, expected {param:?}",
                    error["param"]
                ));
            }
            match error["message"].as_str() {
                Some(m) if m.contains(expect.says) => {}
                _ => wrong.push(format!(
                    "error.message does not say {:?}: {body}",
                    expect.says
                )),
            }
        }
        Shape::Anthropic { kind } => {
            if body["type"] != "error"
                || body["error"]["type"].as_str() != Some(kind)
                || body.as_object().map(|o| o.len()) != Some(2)
                || body["error"].as_object().map(|o| o.len()) != Some(2)
            {
                wrong.push(format!(
                    "not Anthropic's error shape with type {kind:?}: {body}"
                ));
            }
            match body["error"]["message"].as_str() {
                Some(m) if m.contains(expect.says) => {}
                _ => wrong.push(format!(
                    "error.message does not say {:?}: {body}",
                    expect.says
                )),
            }
        }
        Shape::Empty => {}
    }
    wrong
}

/// `mcp_server_errors_total` by `(error_type, endpoint)`.
fn error_series(scrape: &str) -> BTreeMap<(String, String), f64> {
    let mut series = BTreeMap::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("mcp_server_errors_total{") else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").expect("a sample line");
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_else(|| panic!("no {name} label in {line}"))
        };
        let value: f64 = value.parse().expect("a number");
        series.insert((label("error_type"), label("endpoint")), value);
    }
    series
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_documented_error_and_the_gateway_keeps_serving() {
    let (mock_port, port) = (free_port(), free_port());
    let mock_root = format!("http://127.0.0.1:{mock_port}");
    let root = format!("http://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("mcp-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, format!("models:\n  - id: {MODEL}\n")).expect("settings written");

    let mut mock = clean_command(&workspace_binary("mcp-mock-upstream"));
    mock.args(["--listen", &format!("127.0.0.1:{mock_port}")]);
    let mock = Process::spawn(mock);
    let mut proxy = clean_command(Path::new(env!("CARGO_BIN_EXE_mcp-proxy")));
    proxy
        .arg("--config")
        .arg(&settings)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &format!("{mock_root}/v1")])
        .env("MCP__SERVER__BODY_TIMEOUT_SECS", "1")
        .env("MCP__UPSTREAM__HEALTH_CHECK_INTERVAL_SECS", "0")
        .env("MCP__LOG__LEVEL", "warn");
    let mut proxy = Process::spawn(proxy);
    let client = reqwest::Client::new();
    wait_until_serving(&client, &format!("{mock_root}/health")).await;
    wait_until_serving(&client, &format!("{root}/health")).await;

    let mut failures = Vec::new();
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut forwarded = 0u64;
    for Row {
        name,
        request,
        expect,
    } in table()
    {
        if let Some((error_type, endpoint)) = expect.counted {
            *expected
                .entry((error_type.to_owned(), endpoint.to_owned()))
                .or_default() += 1.0;
        }
        forwarded += u64::from(expect.forwarded);
        match send(&client, port, request).await {
            Ok(answer) => failures.extend(
                check(&expect, &answer)
                    .into_iter()
                    .map(|wrong| format!("{name}: {wrong}")),
            ),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        // Whatever the input, the process is still there to answer the next row (a stack
        // overflow would abort it).
        if !proxy.is_running() {
            let output = proxy.kill();
            panic!(
                "the gateway died on row {name:?}:\n{}{}",
                output.stdout, output.stderr
            );
        }
    }

    // Still serving: a normal request after all of that.
    let normal = client
        .post(format!("{root}{CHAT}"))
        .json(&json!({
            "model": MODEL,
            "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .expect("the gateway answers a normal request");
    assert_eq!(normal.status(), 200, "a normal request after the table");
    let normal: Value = normal.json().await.expect("a JSON answer");
    assert!(
        normal["choices"][0]["message"]["content"].is_string(),
        "{normal}"
    );

    // What reached the upstream: the rows documented as forwarded, and the normal request.
    let stats: Value = client
        .get(format!("{mock_root}/admin/stats"))
        .send()
        .await
        .expect("the mock answers")
        .json()
        .await
        .expect("JSON stats");
    if stats["requests_total"].as_u64() != Some(forwarded + 1) {
        failures.push(format!(
            "the upstream received {} requests, expected {} (the forwarded rows and one normal \
             request)",
            stats["requests_total"],
            forwarded + 1
        ));
    }

    // Every row counted by its error type, and nothing else counted.
    let scrape = client
        .get(format!("{root}/metrics"))
        .send()
        .await
        .expect("the gateway answers /metrics")
        .text()
        .await
        .expect("a text scrape");
    let counted = error_series(&scrape);
    assert!(
        !counted.is_empty(),
        "no mcp_server_errors_total in the scrape"
    );
    for ((error_type, endpoint), want) in &expected {
        let got = counted.get(&(error_type.clone(), endpoint.clone()));
        if got != Some(want) {
            failures.push(format!(
                "mcp_server_errors_total{{error_type=\"{error_type}\",endpoint=\"{endpoint}\"}} \
                 is {got:?}, expected {want}"
            ));
        }
    }
    for ((error_type, endpoint), got) in &counted {
        if *got != 0.0 && !expected.contains_key(&(error_type.clone(), endpoint.clone())) {
            failures.push(format!(
                "mcp_server_errors_total{{error_type=\"{error_type}\",endpoint=\"{endpoint}\"}} \
                 is {got}, expected no such errors"
            ));
        }
    }

    assert!(proxy.is_running(), "the gateway is still running");
    drop(proxy.kill());
    drop(mock.kill());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
