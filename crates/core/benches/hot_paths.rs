//! The pure functions on every proxied request's path: reading `usage` from an answer,
//! summarising a streamed chunk, framing SSE events, resolving a model label, and updating a
//! metric through an index versus through a label hash.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_core::metrics::{Indexed, label_values};
use mcp_core::openai::{read_usage, summarize_chunk};
use mcp_core::sse::{EventSplitter, events};
use mcp_core::{ModelCatalog, ModelSpec};
use prometheus::{IntCounterVec, Opts};

const CHAT_COMPLETION: &str = include_str!("../../mock-upstream/fixtures/chat_completion.json");
const CHAT_STREAM: &str = include_str!("../../mock-upstream/fixtures/chat_completion_stream.txt");

fn usage_extraction(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_usage");
    group.throughput(Throughput::Bytes(CHAT_COMPLETION.len() as u64));
    group.bench_function("chat_completion_fixture", |b| {
        b.iter(|| read_usage(black_box(CHAT_COMPLETION.as_bytes())))
    });
    let embedding = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{}]}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":8,"total_tokens":8}}}}"#,
        vec!["-0.0123456789"; 1536].join(",")
    );
    group.throughput(Throughput::Bytes(embedding.len() as u64));
    group.bench_function("embedding_1536_dims", |b| {
        b.iter(|| read_usage(black_box(embedding.as_bytes())))
    });
    group.finish();
}

fn chunk_summary(c: &mut Criterion) {
    let content = br#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#;
    c.bench_function("summarize_chunk/content", |b| {
        b.iter(|| summarize_chunk(black_box(content)))
    });
}

fn sse_framing(c: &mut Criterion) {
    let stream = Bytes::from_static(CHAT_STREAM.as_bytes());
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("split_fixture_in_one_chunk", |b| {
        b.iter(|| {
            let mut splitter = EventSplitter::new();
            let run = splitter
                .push(black_box(stream.clone()))
                .expect("complete events");
            events(&run).count()
        })
    });
    group.bench_function("split_fixture_in_64_byte_chunks", |b| {
        b.iter(|| {
            let mut splitter = EventSplitter::new();
            let mut n = 0;
            for start in (0..stream.len()).step_by(64) {
                let end = (start + 64).min(stream.len());
                if let Some(run) = splitter.push(stream.slice(start..end)) {
                    n += events(&run).count();
                }
            }
            n
        })
    });
    group.finish();
}

fn labels(c: &mut Criterion) {
    let specs = [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
    ]
    .map(ModelSpec::new)
    .to_vec();
    let catalog = ModelCatalog::new(specs).expect("a valid list");
    c.bench_function("model_catalog/resolve", |b| {
        b.iter(|| catalog.resolve(black_box("gpt-3.5-turbo-instruct")))
    });

    let family = IntCounterVec::new(Opts::new("b_total", "bench"), &["model", "outcome"])
        .expect("valid options");
    let indexed = Indexed::new(
        family.clone(),
        [
            label_values(catalog.labels().iter().cloned()),
            label_values(["success", "error"]),
        ],
    );
    let mut group = c.benchmark_group("counter_inc");
    group.bench_function("indexed_child", |b| {
        b.iter(|| indexed.at(black_box([2, 0])).inc())
    });
    group.bench_function("with_label_values", |b| {
        b.iter(|| {
            family
                .with_label_values(black_box(&["gpt-3.5-turbo-instruct", "success"]))
                .inc()
        })
    });
    group.finish();
}

criterion_group!(
    hot_paths,
    usage_extraction,
    chunk_summary,
    sse_framing,
    labels
);
criterion_main!(hot_paths);
