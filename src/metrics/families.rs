//! The encoded families of one target (or of none: the headers alone), with where
//! each family's header and samples lie, so the exposition is assembled from slices.

use bytes::Bytes;

/// Families encoded as OpenMetrics text (no `# EOF`), in the fixed order every
/// encoding uses, with where each family's header and samples lie: the exposition
/// is assembled from these parts without splitting them into separate strings. The
/// text is shared (`Bytes`): an exposition holds slices of it, not a copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedFamilies {
    text: Bytes,
    /// Per family: start of its `#` lines, start of its samples, end.
    bounds: Vec<(usize, usize, usize)>,
}

impl EncodedFamilies {
    /// Finds the families of OpenMetrics text: each starts at a `# HELP` line, and
    /// is its `#` lines followed by its samples.
    pub(super) fn new(text: String) -> Self {
        let mut starts: Vec<usize> = text
            .match_indices("# HELP ")
            .map(|(i, _)| i)
            .filter(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
            .collect();
        starts.push(text.len());
        let bounds = starts
            .windows(2)
            .map(|w| {
                let mut samples = w[0];
                for line in text[w[0]..w[1]].split_inclusive('\n') {
                    if !line.starts_with('#') {
                        break;
                    }
                    samples += line.len();
                }
                (w[0], samples, w[1])
            })
            .collect();
        Self {
            text: Bytes::from(text),
            bounds,
        }
    }

    /// How many families there are.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// The `# HELP`, `# TYPE` (and `# UNIT`) lines of family `i`; empty past the end.
    pub fn header(&self, i: usize) -> Bytes {
        self.bounds
            .get(i)
            .map_or_else(Bytes::new, |&(start, samples, _)| {
                self.text.slice(start..samples)
            })
    }

    /// The sample lines of family `i`; empty past the end.
    pub fn samples(&self, i: usize) -> Bytes {
        self.bounds
            .get(i)
            .map_or_else(Bytes::new, |&(_, samples, end)| {
                self.text.slice(samples..end)
            })
    }

    /// Every family, headers and samples, as one text.
    pub fn text(&self) -> &Bytes {
        &self.text
    }
}
