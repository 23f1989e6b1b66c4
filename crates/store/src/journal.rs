//! The rules of `ShadowStore::begin` and `finish`, shared by both backends so they cannot
//! drift: each backend only loads and stores the entries these functions return.

use harbinger_core::{Begun, Finish, Intent, JournalEntry, JournalStatus, StoreError};

/// What `begin` must write: `Some(entry)` to store (and the intent's shadow, when the
/// entry is new), or `None` when the key exists and nothing is written.
pub(crate) fn begin(existing: Option<JournalEntry>, intent: &Intent, next_seq: u64) -> (Option<JournalEntry>, Begun) {
    match existing {
        Some(mut e) if e.status == JournalStatus::Failed => {
            e.status = JournalStatus::Pending;
            e.attempts = e.attempts.saturating_add(1);
            e.at = intent.at;
            e.finished_at = None;
            (Some(e.clone()), Begun::Started(e))
        }
        Some(e) => (None, Begun::Existing(e)),
        None => {
            let e = JournalEntry {
                seq: next_seq,
                key: intent.key.clone(),
                shadow: intent.shadow.clone(),
                action: intent.action.clone(),
                at: intent.at,
                status: JournalStatus::Pending,
                finished_at: None,
                detail: String::new(),
                attempts: 1,
            };
            (Some(e.clone()), Begun::Started(e))
        }
    }
}

/// The entry `finish` must store.
pub(crate) fn finish(existing: Option<JournalEntry>, f: &Finish) -> Result<JournalEntry, StoreError> {
    let mut e = existing.ok_or_else(|| StoreError::UnknownJournalKey(f.key.clone()))?;
    e.status = f.status;
    e.detail.clone_from(&f.detail);
    e.finished_at = Some(f.at);
    Ok(e)
}
