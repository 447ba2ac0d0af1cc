//! BM25 over memory text, in memory.
//!
//! Why not tantivy: it would add ~80 crates and minutes of cold build on the
//! 2-core CI for what is here a few hundred thousand short texts that fit in RAM.
//! The inverted index is rebuilt from the `memories` tree when twin opens the
//! memory (about a second per 100k memories) and kept current on every change,
//! so it needs no file of its own and nothing on disk can go stale.

use std::collections::HashMap;

/// Okapi BM25 parameters (the usual ones).
const K1: f32 = 1.2;
const B: f32 = 0.75;

const STOP: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "of", "on", "or", "so", "such", "that", "the", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with", "i", "you", "me", "my", "we", "he", "she", "do", "did",
];

/// Lower-cased words of a text (letters and digits), stop words left out.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !STOP.contains(&w.as_str()))
}

#[derive(Default)]
pub struct Bm25 {
    /// term -> (doc slot, term frequency)
    postings: HashMap<String, Vec<(u32, u16)>>,
    /// doc slot -> (memory id, length in terms); `None` once removed.
    docs: Vec<Option<(u64, u32)>>,
    slot_of: HashMap<u64, u32>,
    total_len: u64,
    live: u32,
    dead: u32,
}

impl Bm25 {
    pub fn new() -> Bm25 {
        Bm25::default()
    }

    pub fn len(&self) -> usize {
        self.live as usize
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Add or replace the text of memory `id`.
    pub fn insert(&mut self, id: u64, text: &str) {
        self.remove(id);
        let slot = self.docs.len() as u32;
        let mut tf: HashMap<String, u16> = HashMap::new();
        let mut len = 0u32;
        for t in terms(text) {
            *tf.entry(t).or_default() += 1;
            len += 1;
        }
        for (t, n) in tf {
            self.postings.entry(t).or_default().push((slot, n));
        }
        self.docs.push(Some((id, len)));
        self.slot_of.insert(id, slot);
        self.total_len += len as u64;
        self.live += 1;
    }

    pub fn remove(&mut self, id: u64) {
        if let Some(slot) = self.slot_of.remove(&id)
            && let Some(Some((_, len))) = self.docs.get(slot as usize).cloned()
        {
            self.docs[slot as usize] = None;
            self.total_len -= len as u64;
            self.live -= 1;
            self.dead += 1;
            if self.dead > 1024 && self.dead > self.live {
                self.compact();
            }
        }
    }

    /// Drop removed documents from the postings.
    fn compact(&mut self) {
        let docs = &self.docs;
        for list in self.postings.values_mut() {
            list.retain(|(s, _)| docs[*s as usize].is_some());
        }
        self.postings.retain(|_, l| !l.is_empty());
        self.dead = 0;
    }

    /// The best `k` memories for `query` with their BM25 scores, best first;
    /// `keep` filters memory ids before ranking.
    pub fn search(&self, query: &str, k: usize, keep: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        if self.live == 0 {
            return Vec::new();
        }
        let n = self.live as f32;
        let avg = (self.total_len as f32 / n).max(1.0);
        let mut scores: HashMap<u32, f32> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for t in terms(query) {
            if !seen.insert(t.clone()) {
                continue;
            }
            let Some(list) = self.postings.get(&t) else {
                continue;
            };
            let df = list
                .iter()
                .filter(|(s, _)| self.docs[*s as usize].is_some())
                .count() as f32;
            if df == 0.0 {
                continue;
            }
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(slot, tf) in list {
                let Some((_, len)) = self.docs[slot as usize] else {
                    continue;
                };
                let tf = tf as f32;
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len as f32 / avg));
                *scores.entry(slot).or_default() += s;
            }
        }
        let mut ranked: Vec<(u64, f32)> = scores
            .into_iter()
            .filter_map(|(slot, s)| {
                let (id, _) = self.docs[slot as usize]?;
                keep(id).then_some((id, s))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_rare_terms_higher_and_forgets_removed_docs() {
        let mut b = Bm25::new();
        b.insert(1, "we went hiking in the alps with Alice");
        b.insert(2, "the dentist appointment is on monday");
        b.insert(3, "hiking boots are expensive, hiking is fun");
        let r = b.search("hiking alps", 10, &|_| true);
        assert_eq!(r[0].0, 1, "both terms beat one term twice: {r:?}");
        assert!(r.iter().any(|(id, _)| *id == 3));
        assert!(!r.iter().any(|(id, _)| *id == 2));
        b.remove(1);
        let r = b.search("alps", 10, &|_| true);
        assert!(r.is_empty());
        assert_eq!(b.len(), 2);
        // Replacing a text re-indexes it.
        b.insert(2, "alps trip planning");
        assert_eq!(b.search("alps", 10, &|_| true)[0].0, 2);
        assert!(b.search("dentist", 10, &|_| true).is_empty());
        // Filters apply before the cut.
        assert!(b.search("alps", 10, &|id| id != 2).is_empty());
    }
}
