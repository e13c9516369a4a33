//! Generated embeddings: unit vectors of random floats, one per input, in the fixture's shape.
//! OpenAI's SDKs ask for `encoding_format: "base64"` by default, so that is answered too.

use serde::Serialize;

/// The embeddings body: `count` unit vectors of `dimensions` floats, as JSON numbers or, when
/// the client asked for `encoding_format: "base64"` (the OpenAI SDKs do by default), as
/// base64 of little-endian f32s.
pub(crate) fn body(
    model: &str,
    count: usize,
    dimensions: usize,
    prompt_tokens: u64,
    base64: bool,
    rng: &mut fastrand::Rng,
) -> Vec<u8> {
    let data = (0..count)
        .map(|index| {
            let vector = unit_vector(dimensions, rng);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Embedding::Base64(base64_encode(&bytes))
            } else {
                Embedding::Floats(vector)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let body = EmbeddingsBody {
        object: "list",
        data,
        model,
        usage: EmbeddingsUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    // Serialising plain structs of strings and numbers cannot fail; an empty body would show
    // up in any test.
    serde_json::to_vec(&body).unwrap_or_default()
}

// Typed rather than `json!` so that the floats print as short f32s, not widened f64s.
#[derive(Serialize)]
struct EmbeddingsBody<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingsUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingsUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

fn unit_vector(dimensions: usize, rng: &mut fastrand::Rng) -> Vec<f32> {
    let mut vector: Vec<f32> = (0..dimensions).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (position, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if position <= group.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_examples() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn embedding_vectors_have_unit_length() {
        let mut rng = fastrand::Rng::with_seed(6);
        let norm: f32 = unit_vector(64, &mut rng).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
