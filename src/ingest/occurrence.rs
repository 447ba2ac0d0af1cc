//! How often a message's content occurred before in its stream, so two
//! identical "ok"s in the same minute stay two messages (the count is part
//! of the message key).
//!
//! The content hash covers the conversation and the time, so equal contents
//! only ever meet at the same time in the same conversation. Exports are
//! nearly always in time order per conversation: then only the contents at
//! each conversation's latest time need remembering (a handful), not a map
//! of every message so far (a million random inserts, each a cache miss).
//! The first message that goes back in time turns on the exact map, built
//! from the contents seen so far: the counts are the same either way.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::store::KeyHasher;

use super::records::Id;

type Content = [u8; 16];

type ContentMap = HashMap<Content, u32, BuildHasherDefault<KeyHasher>>;

/// Contents at one time searched one by one at most; past this they go in
/// a map of their own.
const SEARCHED: usize = 32;

/// The contents seen at a conversation's latest time.
#[derive(Default)]
struct Latest {
    at_ms: i64,
    seen: Vec<(Content, u32)>,
    /// All of them instead, when there are many.
    crowd: Option<ContentMap>,
}

#[derive(Default)]
pub(crate) struct Occurrences {
    /// Order mode: per conversation, its latest time and contents.
    latest: HashMap<Id, Latest, BuildHasherDefault<KeyHasher>>,
    /// Every content so far, in order mode (to build `exact` from).
    history: Vec<Content>,
    /// The exact map, once order mode no longer holds.
    exact: Option<ContentMap>,
}

impl Occurrences {
    /// Counts one more `content` (of `conversation` at `at_ms`) and returns
    /// how often it has now occurred, 1 for the first time.
    pub fn count(&mut self, conversation: Id, at_ms: i64, content: Content) -> u32 {
        if self.exact.is_none() && !self.in_order(conversation, at_ms) {
            self.go_exact();
        }
        if let Some(exact) = &mut self.exact {
            let n = exact.entry(content).or_insert(0);
            *n += 1;
            return *n;
        }
        self.history.push(content);
        let latest = self
            .latest
            .get_mut(&conversation)
            .expect("made by in_order");
        if let Some(crowd) = &mut latest.crowd {
            let n = crowd.entry(content).or_insert(0);
            *n += 1;
            return *n;
        }
        if let Some((_, n)) = latest.seen.iter_mut().find(|(c, _)| *c == content) {
            *n += 1;
            return *n;
        }
        if latest.seen.len() >= SEARCHED {
            // A crowd at one time (a chat export with minutes only): a map
            // for this time.
            let mut crowd: ContentMap = latest.seen.drain(..).collect();
            crowd.insert(content, 1);
            latest.crowd = Some(crowd);
            return 1;
        }
        latest.seen.push((content, 1));
        1
    }

    /// Whether `at_ms` keeps `conversation` in time order; moves its latest
    /// time on.
    fn in_order(&mut self, conversation: Id, at_ms: i64) -> bool {
        let latest = self.latest.entry(conversation).or_insert(Latest {
            at_ms,
            ..Latest::default()
        });
        if at_ms > latest.at_ms {
            latest.at_ms = at_ms;
            latest.seen.clear();
            latest.crowd = None;
        }
        at_ms == latest.at_ms
    }

    fn go_exact(&mut self) {
        let mut exact =
            ContentMap::with_capacity_and_hasher(self.history.len(), Default::default());
        for c in self.history.drain(..) {
            *exact.entry(c).or_insert(0) += 1;
        }
        self.history = Vec::new();
        self.latest.clear();
        self.exact = Some(exact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain map every count must agree with.
    fn reference(stream: &[(Id, i64, Content)]) -> Vec<u32> {
        let mut m: HashMap<Content, u32> = HashMap::new();
        stream
            .iter()
            .map(|(_, _, c)| {
                let n = m.entry(*c).or_insert(0);
                *n += 1;
                *n
            })
            .collect()
    }

    fn content(conv: Id, at: i64, text: u8) -> Content {
        let mut c = [0u8; 16];
        c[..8].copy_from_slice(&(conv ^ (at as u64).rotate_left(17)).to_le_bytes());
        c[8] = text;
        c
    }

    fn check(stream: &[(Id, i64, Content)]) {
        let mut o = Occurrences::default();
        let got: Vec<u32> = stream.iter().map(|&(v, t, c)| o.count(v, t, c)).collect();
        assert_eq!(got, reference(stream));
    }

    #[test]
    fn same_counts_as_a_map_in_order_and_out_of_it() {
        let mut s = Vec::new();
        // In order, repeats at one time, two conversations interleaved.
        for t in 0..50i64 {
            for conv in [1u64, 2] {
                for text in [0u8, 1, 0, 0] {
                    s.push((conv, t / 3, content(conv, t / 3, text)));
                }
            }
        }
        check(&s);
        // Then back in time: repeats of contents seen long before.
        let mut back = s.clone();
        back.extend(s.iter().rev().take(40).copied());
        back.extend(s.iter().take(40).copied());
        check(&back);
        // A crowd at one time.
        let crowd: Vec<_> = (0..300u32)
            .map(|i| (7u64, 5i64, content(7, 5, (i % 150) as u8)))
            .collect();
        check(&crowd);
        // A random shuffle.
        let mut shuffled = s.clone();
        let mut x = 12345u64;
        for i in (1..shuffled.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        check(&shuffled);
    }
}
