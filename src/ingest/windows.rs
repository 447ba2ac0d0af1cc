//! Conversation windows: a conversation's messages split wherever the pause
//! between two is longer than the gap (30 minutes by default). Bursts (one
//! person's consecutive messages) and reply pairs (someone, then me) are read
//! off a window when training sets are built.

use super::records::{Conversation, Id, Window, index};
use crate::jobs::JobCtx;
use crate::store::{Store, StoreError, Tree, TxError};

/// Recompute the windows of every conversation marked stale; returns how many
/// windows were written.
pub fn rebuild_stale(store: &Store, gap_ms: i64, ctx: &JobCtx) -> Result<u64, StoreError> {
    let stale: Vec<Conversation> = store
        .scan::<Conversation>([])
        .filter_map(|r| r.ok().map(|(_, c)| c))
        .filter(|c| c.windows_stale)
        .collect();
    let mut written = 0;
    for (i, conv) in stale.iter().enumerate() {
        if ctx.is_cancelled() {
            break;
        }
        written += rebuild(store, conv, gap_ms)?;
        ctx.progress(i as u64 + 1, Some(stale.len() as u64), "conversations");
    }
    Ok(written)
}

/// Split one conversation into windows and replace its old ones, atomically.
pub fn rebuild(store: &Store, conv: &Conversation, gap_ms: i64) -> Result<u64, StoreError> {
    let mut timeline: Vec<(i64, [u8; 16], Id)> = Vec::with_capacity(conv.messages as usize);
    store.for_each_timeline(index::timeline_prefix(conv.id).as_ref(), |k, v| {
        let Some((at, key)) = index::timeline_parts(k) else {
            return;
        };
        let author = u64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
        timeline.push((at, key, author));
    })?;
    let windows = split(conv.id, &timeline, gap_ms);
    let old: Vec<sled::IVec> = store
        .tree(Tree::Windows)
        .scan_prefix(crate::store::Key::new().u64(conv.id))
        .filter_map(|kv| kv.ok().map(|(k, _)| k))
        .collect();
    let mut done = conv.clone();
    done.windows_stale = false;
    store.write(|tx| {
        for k in &old {
            tx.remove(Tree::Windows, k)?;
        }
        for w in &windows {
            tx.put(Window::key(w.conversation, w.start_ms), w)?;
        }
        tx.put(Conversation::key(done.id), &done)?;
        Ok::<_, TxError>(())
    })?;
    Ok(windows.len() as u64)
}

/// Split a time-ordered timeline at pauses longer than `gap_ms`.
pub fn split(conversation: Id, timeline: &[(i64, [u8; 16], Id)], gap_ms: i64) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for &(at, key, author) in timeline {
        match out.last_mut() {
            Some(w) if at - w.end_ms <= gap_ms => {
                w.end_ms = at;
                w.messages.push(key);
                w.authors.push(author);
            }
            _ => out.push(Window {
                conversation,
                start_ms: at,
                end_ms: at,
                messages: vec![key],
                authors: vec![author],
            }),
        }
    }
    out
}

/// Runs of consecutive messages by one author in a window: (author, start, len).
pub fn bursts(w: &Window) -> Vec<(Id, usize, usize)> {
    let mut out: Vec<(Id, usize, usize)> = Vec::new();
    for (i, &a) in w.authors.iter().enumerate() {
        match out.last_mut() {
            Some((author, _, len)) if *author == a => *len += 1,
            _ => out.push((a, i, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_longer_than_the_gap_split_windows() {
        let min = 60_000;
        let t: Vec<(i64, [u8; 16], Id)> = [0, 5, 34, 70, 71, 200]
            .iter()
            .enumerate()
            .map(|(i, m)| (m * min, [i as u8; 16], (i % 2) as u64))
            .collect();
        let w = split(7, &t, 30 * min);
        let sizes: Vec<usize> = w.iter().map(|w| w.messages.len()).collect();
        assert_eq!(sizes, vec![3, 2, 1]);
        assert_eq!((w[1].start_ms, w[1].end_ms), (70 * min, 71 * min));
    }

    #[test]
    fn bursts_group_one_persons_run() {
        let w = Window {
            conversation: 1,
            start_ms: 0,
            end_ms: 0,
            messages: vec![[0; 16]; 6],
            authors: vec![1, 1, 2, 1, 1, 1],
        };
        assert_eq!(bursts(&w), vec![(1, 0, 2), (2, 2, 1), (1, 3, 3)]);
    }
}
