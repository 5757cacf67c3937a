//! What the screen says of each runbook variant: the dump-and-restore one
//! lists its own checkpoints and keys, and does not warn of the slot,
//! subscription and publication it never makes.

mod screens;

use cutover::runbook::Variant;

use screens::*;

/// Nothing set up yet, in the given runbook.
fn fresh_in(variant: Variant) -> Fixture {
    let mut i = info();
    i.runbook = variant;
    fresh_with(i)
}

#[test]
fn the_dump_restore_screen_lists_its_runbook_and_no_replication_warning() {
    let logical = fresh_in(Variant::Logical).screen(120, 40);
    assert!(
        logical.contains("No subscription on the target yet"),
        "{logical}"
    );
    let footer = logical.lines().last().unwrap();
    assert!(footer.contains("F D P U W"), "{footer}");
    assert!(!footer.contains('Y'), "{footer}");

    let dump = fresh_in(Variant::DumpRestore).screen(120, 40);
    for absent in [
        "No subscription on the target yet",
        "No publication on the source yet",
        "No replication slots on the source yet",
        "No replication slot \"",
        "Copy schema to target",
        "Create subscription",
    ] {
        assert!(!dump.contains(absent), "{absent}:\n{dump}");
    }
    for present in [
        "▸ F Preflight checks",
        "None: the dump-and-restore",
        "No replication: the dump-and-restore",
    ] {
        assert!(dump.contains(present), "{present}:\n{dump}");
    }
    // The keys offered are this runbook's.
    let footer = dump.lines().last().unwrap();
    assert!(footer.contains("F prepare  Z Y C T B cutover"), "{footer}");
    assert!(!footer.contains("D P U W"), "{footer}");
}
