//! Importance, decay, compaction and cleanup.
//!
//! importance = base x decay + use + edits, clamped to 0..=1, where decay halves
//! every `half_life_days` since the memory last happened or was retrieved, use
//! grows with the log of retrievals, and a pinned memory is always 1.

use std::collections::HashSet;

use super::{Memories, Memory, MemoryError, MemoryKind, Provenance};
use crate::jobs::JobCtx;
use crate::store::TxError;

#[derive(Debug, Clone, Copy)]
pub struct Life {
    pub base: f32,
    pub pinned: bool,
    pub edited: bool,
    pub access_count: u32,
    pub last_ms: i64,
}

pub fn importance(l: &Life, now_ms: i64, half_life_days: f64) -> f32 {
    if l.pinned {
        return 1.0;
    }
    let age_days = ((now_ms - l.last_ms).max(0) as f64) / 86_400_000.0;
    let decay = if half_life_days > 0.0 {
        0.5f64.powf(age_days / half_life_days) as f32
    } else {
        1.0
    };
    let used = (0.1 * (1.0 + l.access_count as f32).ln()).min(0.3);
    let edited = if l.edited { 0.15 } else { 0.0 };
    (l.base * decay + used + edited).clamp(0.0, 1.0)
}

/// What a compaction pass did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CompactReport {
    pub examined: u64,
    pub merged: u64,
    pub cleaned: u64,
}

/// Merge near-duplicates (cosine >= `threshold`, same kind; the survivor keeps
/// the union of provenance, people, time span and use) and delete memories
/// whose importance fell below `cleanup_below` (never pinned or edited ones,
/// never facts or preferences: those only go when the user forgets them).
pub fn compact(
    mem: &Memories,
    threshold: f32,
    cleanup_below: f32,
    half_life_days: f64,
    ctx: Option<&JobCtx>,
) -> Result<CompactReport, MemoryError> {
    let all: Vec<Memory> = mem
        .store()
        .scan::<Memory>([])
        .map(|r| r.map(|(_, m)| m))
        .collect::<Result<_, _>>()?;
    let mut report = CompactReport::default();
    let mut gone: HashSet<u64> = HashSet::new();
    let now = super::now_ms();
    let total = all.len() as u64;
    for (i, m) in all.iter().enumerate() {
        if ctx.is_some_and(|c| c.is_cancelled()) {
            return Err(MemoryError::Cancelled);
        }
        if let Some(c) = ctx
            && i % 256 == 0
        {
            c.progress(i as u64, Some(total), "memories");
        }
        report.examined += 1;
        if gone.contains(&m.id) {
            continue;
        }
        let life = Life {
            base: m.importance,
            pinned: m.pinned,
            edited: m.edited,
            access_count: m.access_count,
            last_ms: m.end_ms.max(m.accessed_ms),
        };
        let removable =
            !m.pinned && !m.edited && !matches!(m.kind, MemoryKind::Fact | MemoryKind::Preference);
        if removable && importance(&life, now, half_life_days) < cleanup_below {
            mem.remove(&[m.id], false)?;
            gone.insert(m.id);
            report.cleaned += 1;
            continue;
        }
        let Some(v) = mem.vector_of(m)? else { continue };
        for (other_id, cos) in mem.nearest(&v, 5, m.id) {
            if cos < threshold || gone.contains(&other_id) {
                continue;
            }
            let Some(other) = mem.get(other_id)? else {
                continue;
            };
            if other.kind != m.kind || other.pinned || other.edited {
                continue;
            }
            // Keep `m` (met first, so the older key), fold `other` into it.
            let Some(mut keep) = mem.get(m.id)? else {
                break;
            };
            let mut prov: Vec<Provenance> = keep.provenance.clone();
            for p in other.provenance.iter().cloned() {
                if !prov.contains(&p) {
                    prov.push(p);
                }
            }
            prov.push(Provenance::Memory { id: other.id });
            keep.provenance = prov;
            for c in &other.contacts {
                if !keep.contacts.contains(c) {
                    keep.contacts.push(*c);
                }
            }
            keep.start_ms = keep.start_ms.min(other.start_ms);
            keep.end_ms = keep.end_ms.max(other.end_ms);
            keep.access_count = keep.access_count.saturating_add(other.access_count);
            keep.importance = keep.importance.max(other.importance);
            mem.store().write(|tx| {
                tx.put(Memory::key(keep.id), &keep)?;
                Ok::<_, TxError>(())
            })?;
            mem.reload_meta(&keep);
            mem.remove(&[other.id], false)?;
            gone.insert(other.id);
            report.merged += 1;
        }
    }
    mem.save()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_is_top_decay_halves_use_counts() {
        let day = 86_400_000;
        let l = Life {
            base: 0.4,
            pinned: false,
            edited: false,
            access_count: 0,
            last_ms: 0,
        };
        assert!((importance(&l, 0, 180.0) - 0.4).abs() < 1e-6);
        assert!((importance(&l, 180 * day, 180.0) - 0.2).abs() < 1e-4);
        let used = Life {
            access_count: 10,
            ..l
        };
        assert!(importance(&used, 0, 180.0) > 0.6);
        let pinned = Life { pinned: true, ..l };
        assert_eq!(importance(&pinned, 10_000 * day, 180.0), 1.0);
    }
}
