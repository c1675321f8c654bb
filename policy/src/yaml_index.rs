//! Maps field paths (`providers.openai.keys[0].key`) to source positions, so
//! that checks made after deserialisation can still point at a line.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};

/// 1-based (line, column) of every mapping key and sequence item.
#[derive(Default)]
pub struct YamlIndex {
    positions: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

impl YamlIndex {
    pub fn build(source: &str) -> Self {
        let mut index = YamlIndex::default();
        let mut parser = Parser::new_from_str(source);
        let mut stack: Vec<Frame> = Vec::new();
        // A malformed document is reported by the deserialiser; the index
        // just stops where the parser stops.
        while let Ok((event, mark)) = parser.next_token() {
            let pos = (mark.line(), mark.col() + 1);
            match event {
                Event::StreamEnd => break,
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { path, pending_key }) = stack.last_mut() {
                        if pending_key.is_none() {
                            // A block mapping's start mark lies past its first
                            // key, so the map is located at that key instead.
                            index.positions.entry(path.clone()).or_insert(pos);
                            let p = join(path, &value);
                            index.positions.insert(p, pos);
                            *pending_key = Some(value);
                            continue;
                        }
                    }
                    index.value_done(&mut stack, pos);
                }
                Event::Alias(_) => index.value_done(&mut stack, pos),
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let path = index.value_path(&mut stack, pos, !is_map);
                    stack.push(if is_map {
                        Frame::Map {
                            path,
                            pending_key: None,
                        }
                    } else {
                        Frame::Seq { path, next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    index.finish_value(&mut stack);
                }
                _ => {}
            }
        }
        index
    }

    /// The path of the value that starts here, recording sequence items.
    fn value_path(&mut self, stack: &mut [Frame], pos: (usize, usize), record: bool) -> String {
        match stack.last_mut() {
            Some(Frame::Map { path, pending_key }) => {
                join(path, pending_key.as_deref().unwrap_or(""))
            }
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                if record {
                    self.positions.insert(p.clone(), pos);
                }
                p
            }
            None => String::new(),
        }
    }

    fn value_done(&mut self, stack: &mut [Frame], pos: (usize, usize)) {
        self.value_path(stack, pos, true);
        self.finish_value(stack);
    }

    fn finish_value(&mut self, stack: &mut [Frame]) {
        match stack.last_mut() {
            Some(Frame::Map { pending_key, .. }) => *pending_key = None,
            Some(Frame::Seq { next, .. }) => *next += 1,
            None => {}
        }
    }

    /// Position of `path`, or of its nearest recorded ancestor.
    pub fn locate(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return (0, 0),
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys_and_items() {
        let src = "version: 1\nproviders:\n  openai:\n    keys:\n      - key: a\n      - key: b\n";
        let idx = YamlIndex::build(src);
        assert_eq!(idx.locate("version"), (1, 1));
        assert_eq!(idx.locate("providers.openai"), (3, 3));
        assert_eq!(idx.locate("providers.openai.keys[1]"), (6, 9));
        assert_eq!(idx.locate("providers.openai.keys[1].key"), (6, 9));
        // Unknown leaf falls back to its parent.
        assert_eq!(idx.locate("providers.openai.nope"), (3, 3));
        assert_eq!(idx.locate("nothing"), (0, 0));
    }
}
