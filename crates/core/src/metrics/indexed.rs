//! Metric children resolved once, then found by index.
//!
//! Every label of the gateway's own families takes its values from a small closed set
//! (endpoints, configured models, upstreams, outcomes), so a child can be addressed by one
//! index per label. The first use resolves the child through the family's label hash; every
//! later use is an array lookup. Series still appear only once they are first used.

use std::sync::{Arc, OnceLock};

use prometheus::core::{MetricVec, MetricVecBuilder};

/// A labelled family (`IntCounterVec`, `HistogramVec`, ...), named by its public alias.
pub trait Family {
    type Child: Send + Sync;
    fn child(&self, labels: &[&str]) -> Self::Child;
}

impl<B: MetricVecBuilder> Family for MetricVec<B> {
    type Child = B::M;

    fn child(&self, labels: &[&str]) -> B::M {
        self.with_label_values(labels)
    }
}

/// The values one label can take, in index order.
pub type LabelValues = Arc<[String]>;

/// Builds a [`LabelValues`] from any list of strings.
pub fn label_values<S: Into<String>>(values: impl IntoIterator<Item = S>) -> LabelValues {
    values.into_iter().map(Into::into).collect()
}

/// A metric family with `N` labels whose children are cached by index.
pub struct Indexed<F: Family, const N: usize> {
    family: F,
    values: [LabelValues; N],
    children: Box<[OnceLock<F::Child>]>,
}

impl<F: Family, const N: usize> Indexed<F, N> {
    pub fn new(family: F, values: [LabelValues; N]) -> Self {
        let slots = values.iter().map(|v| v.len()).product();
        Self {
            family,
            values,
            children: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The child for one index per label, in the family's label order.
    ///
    /// # Panics
    /// If an index is out of range for its label: indexes come from the same closed sets the
    /// family was built with, so this is a programming error.
    pub fn at(&self, at: [usize; N]) -> &F::Child {
        let mut slot = 0;
        for (i, values) in self.values.iter().enumerate() {
            assert!(at[i] < values.len(), "label index out of range");
            slot = slot * values.len() + at[i];
        }
        self.children[slot].get_or_init(|| {
            let labels: [&str; N] = std::array::from_fn(|i| self.values[i][at[i]].as_str());
            self.family.child(&labels)
        })
    }

    /// Creates the child now, so that the series exists (at zero) before its first event:
    /// a `rate()` over a series that appears with its first increment misses that increment.
    pub fn touch(&self, at: [usize; N]) {
        let _ = self.at(at);
    }
}

impl<F: Family, const N: usize> std::fmt::Debug for Indexed<F, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexed")
            .field("labels", &self.values)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{IntCounterVec, Opts, Registry};

    use super::*;

    #[test]
    fn children_are_addressed_by_index_and_labelled_by_value() {
        let registry = Registry::new();
        let family = IntCounterVec::new(Opts::new("t_total", "test"), &["a", "b"]).unwrap();
        registry.register(Box::new(family.clone())).unwrap();
        let indexed = Indexed::new(
            family.clone(),
            [label_values(["x", "y"]), label_values(["p", "q", "r"])],
        );
        indexed.at([1, 2]).inc();
        indexed.at([1, 2]).inc();
        indexed.at([0, 0]).inc();
        assert_eq!(family.with_label_values(&["y", "r"]).get(), 2);
        assert_eq!(family.with_label_values(&["x", "p"]).get(), 1);
        assert_eq!(family.with_label_values(&["x", "q"]).get(), 0);
    }

    #[test]
    #[should_panic(expected = "label index out of range")]
    fn an_index_outside_the_closed_set_is_a_bug() {
        let family = IntCounterVec::new(Opts::new("t_total", "test"), &["a"]).unwrap();
        Indexed::new(family, [label_values(["x"])]).at([1]);
    }
}
