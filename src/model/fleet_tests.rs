//! Several databases in one window, on the model side: choosing the
//! database shown, checkpoints for all of them at once, and the one word
//! that confirms those (never the single database's confirmation).

use super::actions::tests::kube_info;
use super::keymap::{dispatch, SessionCommand, FLEET_WORD};
use super::update::tests::Feed;
use super::Fleet;
use crate::runbook::{CheckpointId, Confirm};
use crate::session::EventKind;

fn fleet() -> Option<Fleet> {
    Some(Fleet::new(vec![
        "app".into(),
        "billing".into(),
        "stock".into(),
    ]))
}

#[test]
fn the_database_keys_choose_and_wrap_only_in_a_session_of_several() {
    let mut f = Feed::with(kube_info(false));
    f.live(1, 0);
    // One database: the keys are not bound, and not in the footer.
    assert_eq!(dispatch(&f.m, &mut f.view, "]"), None);
    assert_eq!(f.view.fleet, None);
    f.view.fleet = fleet();
    dispatch(&f.m, &mut f.view, "]");
    dispatch(&f.m, &mut f.view, "]");
    assert_eq!(f.view.selected_db(), 2);
    dispatch(&f.m, &mut f.view, "]");
    assert_eq!(f.view.selected_db(), 0);
    dispatch(&f.m, &mut f.view, "[");
    assert_eq!(f.view.selected_db(), 2);
    assert_eq!(f.view.fleet.as_ref().unwrap().targets(), vec![2]);
    dispatch(&f.m, &mut f.view, "a");
    assert_eq!(f.view.fleet.as_ref().unwrap().targets(), vec![0, 1, 2]);
    dispatch(&f.m, &mut f.view, "a");
    assert_eq!(f.view.fleet.as_ref().unwrap().targets(), vec![2]);
}

#[test]
fn all_at_once_is_confirmed_by_its_word_and_names_every_database() {
    let mut f = Feed::with(kube_info(false));
    f.live(1, 0);
    f.view.fleet = fleet();
    dispatch(&f.m, &mut f.view, "a");
    f.key(2, "S");
    assert_eq!(f.m.dialog, Some(CheckpointId::SwitchConfig));
    let plan = crate::runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    let Confirm::TypeName(name) = plan.confirm.clone() else {
        panic!("the switch asks for its object's name")
    };
    // Its guards fail here (nothing frozen): overridden with a reason,
    // so only the typed word decides.
    f.view.editing_reason = true;
    for c in "rehearsal on the lab, guards not the point".chars() {
        f.view.reason.key(&c.to_string());
    }
    f.view.editing_reason = false;
    // The single database's word does not confirm all of them.
    for c in name.chars() {
        f.view.typed.key(&c.to_string());
    }
    let command = dispatch(&f.m, &mut f.view, "Enter").unwrap();
    let SessionCommand::Confirm { fleet, .. } = &command else {
        panic!("{command:?}")
    };
    assert_eq!(fleet, &["app", "billing", "stock"]);
    f.send(3, EventKind::Command(command));
    assert!(f.m.actions.history.is_empty(), "refused: not the word");
    f.view.typed = Default::default();
    for c in FLEET_WORD.chars() {
        f.view.typed.key(&c.to_string());
    }
    let command = dispatch(&f.m, &mut f.view, "Enter").unwrap();
    f.send(4, EventKind::Command(command));
    assert_eq!(f.m.actions.history.len(), 1);
    assert_eq!(
        f.m.actions.history[0].checkpoint,
        CheckpointId::SwitchConfig
    );
    // The word means nothing to a confirmation for one database.
    let mut one = Feed::with(kube_info(false));
    one.live(1, 0);
    one.key(2, "S");
    one.send(
        3,
        EventKind::Command(SessionCommand::Confirm {
            checkpoint: CheckpointId::SwitchConfig,
            typed: FLEET_WORD.into(),
            reason: Some("rehearsal on the lab, guards not the point".into()),
            fleet: Vec::new(),
        }),
    );
    assert!(one.m.actions.history.is_empty());
}

#[test]
fn quitting_asks_first_while_any_database_runs_a_checkpoint() {
    let mut f = Feed::with(kube_info(false));
    f.live(1, 0);
    f.view.fleet = fleet();
    f.view.fleet.as_mut().unwrap().busy = true;
    assert_eq!(dispatch(&f.m, &mut f.view, "q"), None);
    assert!(f.view.confirm_quit);
}
