//! Which database the application's config points at, by fingerprint: the
//! value the switch writes (the target's, "new"), the value it replaces (the
//! source's, "old"), and what the config key held when last read or
//! written. Pure: read from the access review's answer and the runs' steps.

use chrono::{DateTime, Utc};

use super::Model;
use crate::runbook::Step;

/// Which database a db-config fingerprint points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbSide {
    /// The value the switch replaces: the source.
    Old,
    /// The value the switch writes: the target.
    New,
    /// Neither value the session knows (or they are not known yet).
    Unknown,
}

impl DbSide {
    pub fn word(self) -> &'static str {
        match self {
            DbSide::Old => "old db",
            DbSide::New => "new db",
            DbSide::Unknown => "unknown db",
        }
    }
}

/// The two config values the session knows, by fingerprint, and the key's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbConfigs {
    pub old: Option<String>,
    pub new: Option<String>,
    /// What the config key held as last known, and since when it is known:
    /// None when never read, absent or unreadable at the latest look.
    pub key: Option<(DateTime<Utc>, String)>,
}

impl DbConfigs {
    pub fn side(&self, fingerprint: &str) -> DbSide {
        if self.new.as_deref() == Some(fingerprint) {
            DbSide::New
        } else if self.old.as_deref() == Some(fingerprint) {
            DbSide::Old
        } else {
            DbSide::Unknown
        }
    }
}

/// What the session knows of the config values. "new": as the switch wrote
/// it, else as the switch value reads now. "old": what the switch replaced,
/// else what a rollback restored, else what the key held before any switch
/// (the access review's read, when it is not the new value). The key: the
/// latest of the access review's read and the patches that succeeded.
pub fn db_configs(model: &Model) -> DbConfigs {
    let actions = &model.actions;
    let read = actions
        .preflight
        .as_ref()
        .and_then(|p| p.switch_value.as_ref().map(|v| (p.at, v)));
    let switched = actions.switched.as_ref();
    let new = switched
        .map(|(_, r)| r.new_fingerprint.clone())
        .or_else(|| read.and_then(|(_, v)| v.new_fingerprint.clone()));

    let mut key: Vec<(DateTime<Utc>, Option<String>)> = Vec::new();
    if let Some((at, v)) = read {
        key.push((at, v.current_fingerprint.clone()));
    }
    let mut old_written = None;
    for s in actions.history.iter().flat_map(|r| &r.steps) {
        let Some((at, Ok(_))) = &s.finished else {
            continue;
        };
        let at = *at;
        match &s.step {
            Step::PatchConfig {
                new_fingerprint: Some(n),
                expect_current,
                ..
            } => {
                key.push((at, Some(n.clone())));
                if let Some(e) = expect_current.as_ref().filter(|e| *e != n) {
                    old_written = Some(e.clone());
                }
            }
            Step::RestoreConfig { restore, .. } => {
                key.push((at, restore.clone()));
                old_written = restore.clone().or(old_written);
            }
            // Seen applied through Git: what the key held from then on.
            Step::AwaitConfig {
                want, was, undo, ..
            } => {
                key.push((at, want.clone()));
                if *undo {
                    old_written = want.clone().or(old_written);
                } else if let Some(w) = was.as_ref().filter(|w| Some(*w) != want.as_ref()) {
                    old_written = Some(w.clone());
                }
            }
            _ => {}
        }
    }
    if let Some((at, r)) = switched {
        key.push((*at, Some(r.new_fingerprint.clone())));
    }
    let old = switched
        .and_then(|(_, r)| r.previous_fingerprint.clone())
        .or(old_written)
        .or_else(|| read.and_then(|(_, v)| v.current_fingerprint.clone()))
        .filter(|o| Some(o) != new.as_ref());
    // The latest word; a tie goes to what was written.
    let key = key
        .into_iter()
        .max_by_key(|(at, _)| *at)
        .and_then(|(at, fp)| fp.map(|fp| (at, fp)));
    DbConfigs { old, new, key }
}

#[cfg(test)]
pub(in crate::model) mod tests {
    use super::*;
    use crate::model::update::tests::{at, Feed};
    use crate::runbook::CheckpointId;
    use crate::session::{EventKind, SwitchRecord, SwitchValue};

    fn reviewed(f: &mut Feed, t: i64, new: &str, current: Option<&str>) {
        f.send(
            t,
            EventKind::KubePreflightDone {
                checks: vec![],
                switch_value: Some(SwitchValue {
                    new_fingerprint: Some(new.into()),
                    current_fingerprint: current.map(str::to_string),
                    error: None,
                    ..Default::default()
                }),
                error: None,
            },
        );
    }

    /// A run of `checkpoint` whose one step is `step`, done at `t`.
    fn ran(
        f: &mut Feed,
        t: i64,
        checkpoint: CheckpointId,
        step: Step,
        switched: Option<SwitchRecord>,
    ) {
        crate::model::update::tests::ran(f, t, checkpoint, vec![step], true, "done", switched);
    }

    fn patch(new: &str, current: &str) -> Step {
        patch_as(new, current, crate::runbook::plan::SwitchTo::Target)
    }

    /// The fixture app's config key patched from `current` to `new`.
    pub(in crate::model) fn patch_as(
        new: &str,
        current: &str,
        to: crate::runbook::plan::SwitchTo,
    ) -> Step {
        Step::PatchConfig {
            namespace: "shop".into(),
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            new_fingerprint: Some(new.into()),
            expect_current: Some(current.into()),
            to,
        }
    }

    #[test]
    fn nothing_known_says_unknown_never_new() {
        let f = Feed::new();
        let db = db_configs(&f.m);
        assert_eq!(db, DbConfigs::default());
        assert_eq!(db.side("a1f0e9c3"), DbSide::Unknown);
    }

    #[test]
    fn old_and_new_from_the_review_then_the_switch_then_the_rollback() {
        let mut f = Feed::new();
        reviewed(&mut f, 1, "new1", Some("old1"));
        let db = db_configs(&f.m);
        assert_eq!(
            (db.side("new1"), db.side("old1")),
            (DbSide::New, DbSide::Old)
        );
        assert_eq!(db.key, Some((at(1), "old1".into())));
        ran(
            &mut f,
            5,
            CheckpointId::SwitchConfig,
            patch("new1", "old1"),
            Some(SwitchRecord {
                object: "configmap/app-db".into(),
                key: "DATABASE_URL".into(),
                previous_fingerprint: Some("old1".into()),
                new_fingerprint: "new1".into(),
                changed: true,
            }),
        );
        // A review after the switch reads the new value: old stays known.
        reviewed(&mut f, 6, "new1", Some("new1"));
        let db = db_configs(&f.m);
        assert_eq!(
            (db.old.as_deref(), db.new.as_deref()),
            (Some("old1"), Some("new1"))
        );
        assert_eq!(db.key, Some((at(6), "new1".into())));
        // The rollback forgets the switch record; its step says what came back.
        let restore = Step::RestoreConfig {
            namespace: "shop".into(),
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            restore: Some("old1".into()),
            expect_current: "new1".into(),
            unfreezes: false,
        };
        let back = SwitchRecord {
            previous_fingerprint: Some("new1".into()),
            new_fingerprint: "old1".into(),
            ..f.m.actions.switched.clone().unwrap().1
        };
        ran(&mut f, 9, CheckpointId::Rollback, restore, Some(back));
        assert_eq!(f.m.actions.switched, None);
        let db = db_configs(&f.m);
        assert_eq!(
            (db.side("new1"), db.side("old1")),
            (DbSide::New, DbSide::Old)
        );
        assert_eq!(db.key, Some((at(9), "old1".into())));
    }

    #[test]
    fn a_key_absent_or_unreadable_at_the_latest_look_is_not_known() {
        let mut f = Feed::new();
        reviewed(&mut f, 1, "new1", Some("old1"));
        reviewed(&mut f, 2, "new1", None);
        assert_eq!(db_configs(&f.m).key, None);
    }
}
