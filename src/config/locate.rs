//! Maps key paths (`targets[1].address`) to the line they stand on in the YAML text.
//!
//! serde reports a line only for structural errors (unknown key, wrong type). Semantic
//! checks run after deserialization, on plain structs with no positions, so this index
//! is built once from the parser's events to give those errors a line as well.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line numbers (1-based) of every mapping key and sequence item, by path.
#[derive(Debug, Default)]
pub struct KeyLines {
    lines: HashMap<String, usize>,
}

impl KeyLines {
    /// Indexes `text`. A document that does not parse yields an empty index: serde
    /// reports the syntax error itself, with its own position.
    pub fn index(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Self::default();
        }
        Self {
            lines: builder.lines,
        }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    /// `key` is the pending key whose value comes next; None while a key is expected.
    Mapping {
        path: String,
        key: Option<String>,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Builder {
    /// Called for every node in value position: returns the node's path and records it.
    fn enter_value(&mut self, line: usize) -> Option<String> {
        let path = match self.stack.last_mut()? {
            Frame::Mapping { path, key } => {
                let key = key.take()?;
                join(path, &key)
            }
            Frame::Sequence { path, next_index } => {
                let item = format!("{path}[{next_index}]");
                *next_index += 1;
                self.lines.entry(item.clone()).or_insert(line);
                item
            }
        };
        Some(path)
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    self.lines.insert(join(path, &value), line);
                    *key = Some(value);
                } else {
                    self.enter_value(line);
                }
            }
            Event::Alias(_) => {
                self.enter_value(line);
            }
            Event::MappingStart(..) => {
                let path = if self.stack.is_empty() {
                    String::new()
                } else {
                    self.enter_value(line).unwrap_or_default()
                };
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.enter_value(line).unwrap_or_default();
                self.stack.push(Frame::Sequence {
                    path,
                    next_index: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
global:
  collect_interval: 15s
targets:
  - name: a
    address: 127.0.0.1:1
    tenants: [t1, t2]
    labels: {cluster: prod}
  - name: b

    address: x
";

    #[test]
    fn finds_keys_items_and_ancestors() {
        let lines = KeyLines::index(DOC);
        assert_eq!(lines.line_of("global"), Some(1));
        assert_eq!(lines.line_of("global.collect_interval"), Some(2));
        assert_eq!(lines.line_of("targets[0]"), Some(4));
        assert_eq!(lines.line_of("targets[0].address"), Some(5));
        assert_eq!(lines.line_of("targets[0].tenants[1]"), Some(6));
        assert_eq!(lines.line_of("targets[0].labels.cluster"), Some(7));
        assert_eq!(lines.line_of("targets[1].address"), Some(10));
        // A key that is absent falls back to its parent.
        assert_eq!(lines.line_of("targets[1].user"), Some(8));
        assert_eq!(lines.line_of("nothing"), None);
    }

    #[test]
    fn broken_yaml_gives_an_empty_index() {
        assert_eq!(KeyLines::index("a: [").line_of("a"), None);
    }
}
