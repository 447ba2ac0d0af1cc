//! Schema migrations. `MIGRATIONS[i]` moves a store from version `i` to `i + 1`;
//! later issues append steps and bump nothing else. Each step is recorded as soon
//! as it finishes, so an interrupted migration resumes where it stopped.

use super::{Store, StoreError, Tree};

/// One step: bring the store from the previous version to the next.
pub type Migration = fn(&Store) -> Result<(), StoreError>;

/// The steps, in order. The current schema version is their number.
pub const MIGRATIONS: &[Migration] = &[
    v0_to_v1_count_records,
    v1_to_v2_windows_documents_index,
    v2_to_v3_messages_log,
];

/// The schema version this twin writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1 keeps per-tree record counts in `meta`; a version-0 store gets them
/// counted once.
fn v0_to_v1_count_records(store: &Store) -> Result<(), StoreError> {
    store.recount()
}

/// Version 2 adds the `windows`, `documents` and `index` trees (sled creates
/// them empty on open) and their counts.
fn v1_to_v2_windows_documents_index(store: &Store) -> Result<(), StoreError> {
    store.recount()
}

/// Version 3 keeps messages and the timeline keys in the messages log
/// instead of sled's `messages` and `index` trees (see `store/log.rs`): they
/// are moved over.
fn v2_to_v3_messages_log(store: &Store) -> Result<(), StoreError> {
    let n = store.move_to_log()?;
    if n > 0 {
        tracing::info!("moved {n} messages and timeline keys into the messages log");
    }
    Ok(())
}

/// Bring `store` up to `steps.len()`, or refuse a store newer than that.
pub fn run(store: &Store, steps: &[Migration]) -> Result<(), StoreError> {
    let target = steps.len() as u32;
    let found = match store.schema_version()? {
        Some(v) => v,
        None if is_empty(store) => {
            // A brand-new store: nothing to migrate.
            return store.set_schema_version(target);
        }
        None => 0,
    };
    if found > target {
        return Err(StoreError::TooNew {
            path: store.dir().to_path_buf(),
            found,
            supported: target,
        });
    }
    for (from, step) in steps.iter().enumerate().skip(found as usize) {
        let to = from as u32 + 1;
        tracing::info!(
            "migrating store {} to schema version {to}",
            store.dir().display()
        );
        step(store).map_err(|e| StoreError::Migration {
            to,
            detail: e.to_string(),
        })?;
        store.set_schema_version(to)?;
    }
    Ok(())
}

fn is_empty(store: &Store) -> bool {
    Tree::ALL.iter().all(|t| store.tree(*t).is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn old_store_is_migrated_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            // Simulate a version-0 store: records written without counts or version.
            s.tree_raw(Tree::Messages)
                .insert(b"m1", b"x".to_vec())
                .unwrap();
            s.tree_raw(Tree::Messages)
                .insert(b"m2", b"y".to_vec())
                .unwrap();
            // A timeline key of a version-2 store, in `index`, beside an alias.
            let mut t = b"t".to_vec();
            t.extend_from_slice(&[7u8; 32]);
            s.tree_raw(Tree::Index)
                .insert(&t, &9u64.to_be_bytes())
                .unwrap();
            s.tree_raw(Tree::Index).insert(b"aname:x\0", b"1").unwrap();
            s.tree_raw(Tree::Meta).clear().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), Some(SCHEMA_VERSION));
        assert_eq!(s.count(Tree::Messages).unwrap(), 2);
        let timeline: Vec<_> = s
            .tree(Tree::Timeline)
            .scan_prefix(b"t")
            .map(|kv| kv.unwrap())
            .collect();
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline[0].1, 9u64.to_be_bytes());
        assert_eq!(s.tree_raw(Tree::Index).len(), 1, "the alias stays");
        // Version 3: the messages moved from sled into the log.
        assert!(s.tree_raw(Tree::Messages).is_empty());
        assert_eq!(s.tree(Tree::Messages).len(), 2);
        assert_eq!(s.tree(Tree::Messages).get(b"m2").unwrap().unwrap(), b"y");
    }

    #[test]
    fn newer_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.set_schema_version(SCHEMA_VERSION + 1).unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::TooNew { .. }));
        assert!(err.to_string().contains("upgrade twin"), "{err}");
    }

    static STEPS_RUN: AtomicU32 = AtomicU32::new(0);

    fn step_ok(_: &Store) -> Result<(), StoreError> {
        STEPS_RUN.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn step_fail(_: &Store) -> Result<(), StoreError> {
        Err(StoreError::Aborted("disk full".into()))
    }

    #[test]
    fn steps_run_in_order_and_stop_at_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.set_schema_version(1).unwrap();
        STEPS_RUN.store(0, Ordering::SeqCst);
        run(&s, &[step_ok, step_ok, step_ok]).unwrap();
        assert_eq!(
            STEPS_RUN.load(Ordering::SeqCst),
            2,
            "only steps 1->2 and 2->3 run"
        );
        assert_eq!(s.schema_version().unwrap(), Some(3));

        let err = run(&s, &[step_ok, step_ok, step_ok, step_fail, step_ok]).unwrap_err();
        assert!(err.to_string().contains("schema version 4"), "{err}");
        assert_eq!(
            s.schema_version().unwrap(),
            Some(3),
            "a failed step is not recorded"
        );
    }
}
