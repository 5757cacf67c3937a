//! The pooler pane (`[pooler]`), drawn: each PgBouncer instance serving or
//! paused, its clients active and waiting, where its server connections
//! go (named source or target); while paused, the queue and the longest
//! wait in the pane's title and on the war-room screen; an unreachable
//! instance and a stale sample said as such. At 80×24 and 200×50.

mod screens;

use cutover::pooler::{Database, Instance, InstanceSample, Pool, PoolerSample, Server};
use cutover::session::{EventKind, PoolerInfo};

use screens::*;

fn instance(i: usize, paused: bool, waiting: u64, to: &str) -> InstanceSample {
    let (host, port) = to.split_once(':').unwrap();
    InstanceSample {
        instance: Instance {
            name: format!("pgbouncer-{i}"),
            host: format!("10.1.0.{}", 10 + i),
            port: 6432,
        },
        error: None,
        entry: Some(Database {
            name: "shop".into(),
            host: host.into(),
            port: port.parse().unwrap(),
            database: "shop".into(),
            paused,
            disabled: false,
            current_connections: 2,
        }),
        pools: vec![Pool {
            database: "shop".into(),
            user: "app".into(),
            cl_active: if paused { 0 } else { 4 },
            cl_waiting: waiting,
            sv_active: 1,
            sv_idle: 1,
            sv_used: 0,
            maxwait_ms: if waiting > 0 { 1_800 } else { 0 },
        }],
        servers: if paused {
            vec![]
        } else {
            (0..2)
                .map(|_| Server {
                    database: "shop".into(),
                    user: "app".into(),
                    state: "idle".into(),
                    addr: host.into(),
                    port: port.parse().unwrap(),
                })
                .collect()
        },
    }
}

fn with_pooler() -> Fixture {
    let mut i = info();
    i.pooler = Some(PoolerInfo {
        instances: "service/pgbouncer".into(),
        database: "shop".into(),
        databases_file: "/etc/pgbouncer/databases.ini".into(),
        pause_timeout_secs: 10,
    });
    let mut f = fresh_with(i);
    f.at(1.0);
    f
}

fn sample(instances: Vec<InstanceSample>) -> EventKind {
    EventKind::PoolerSampled(PoolerSample {
        database: "shop".into(),
        instances,
        error: None,
        file: None,
    })
}

#[test]
fn each_instance_says_where_its_servers_go() {
    let mut f = with_pooler();
    f.push(sample(vec![
        instance(0, false, 0, "10.0.1.5:5432"),
        instance(1, false, 0, "10.0.1.5:5432"),
    ]));
    let wide = f.screen(200, 50);
    let l0 = line_with(&wide, "pgbouncer-0");
    assert!(
        l0.contains("● serving  clients 4 active · 0 waiting  servers → source 10.0.1.5:5432 ×2"),
        "{wide}"
    );
    assert!(
        line_with(&wide, "╭ Pooler").contains("service/pgbouncer · entry shop")
            && line_with(&wide, "╭ Pooler").contains("● watching"),
        "{wide}"
    );
    let narrow = f.screen(80, 24);
    assert!(
        line_with(&narrow, "pgbouncer-1").contains("● serving 4 active 0 waiting → source ×2"),
        "{narrow}"
    );
}

#[test]
fn while_paused_the_queue_and_the_longest_wait_show() {
    let mut f = with_pooler();
    f.push(sample(vec![
        instance(0, true, 3, "10.0.1.5:5432"),
        instance(1, true, 2, "10.0.1.5:5432"),
    ]));
    let wide = f.screen(200, 50);
    assert!(
        line_with(&wide, "╭ Pooler").contains("⏸ 2/2 paused · 5 clients waiting · longest 1.8 s"),
        "{wide}"
    );
    assert!(
        line_with(&wide, "pgbouncer-0")
            .contains("⏸ PAUSED   clients 0 active · 3 waiting (longest 1.8 s)  entry → source"),
        "{wide}"
    );
    // After the repoint: the entry names the target.
    f.at(2.0).push(sample(vec![
        instance(0, false, 0, "10.0.2.7:5432"),
        instance(1, false, 0, "10.0.2.7:5432"),
    ]));
    let narrow = f.screen(80, 24);
    assert!(
        line_with(&narrow, "pgbouncer-0").contains("→ target ×2"),
        "{narrow}"
    );
}

#[test]
fn the_war_room_watches_the_pause() {
    let mut f = with_pooler();
    f.push(sample(vec![
        instance(0, true, 3, "10.0.1.5:5432"),
        instance(1, false, 0, "10.0.1.5:5432"),
    ]));
    f.key("w");
    for (w, h) in [(80, 24), (200, 50)] {
        let s = f.screen(w, h);
        assert!(
            line_with(&s, "POOLER").contains("⏸ 1/2 PAUSED · 3 clients waiting · longest 1.8 s"),
            "{s}"
        );
    }
}

#[test]
fn an_unreachable_instance_and_a_stale_sample_are_said() {
    let mut f = with_pooler();
    let mut down = instance(1, false, 0, "10.0.1.5:5432");
    down.error = Some("PgBouncer pgbouncer-1 (10.1.0.11:6432): no answer within 2s".into());
    f.push(sample(vec![instance(0, false, 0, "10.0.1.5:5432"), down]));
    let wide = f.screen(200, 50);
    assert!(
        line_with(&wide, "pgbouncer-1")
            .contains("✖ PgBouncer pgbouncer-1 (10.1.0.11:6432): no answer"),
        "{wide}"
    );
    f.key("w");
    assert!(
        line_with(&f.screen(200, 50), "POOLER").contains("● 1/2 serving · ✖ 1 unreachable"),
        "{}",
        f.screen(200, 50)
    );
    f.key("w");
    // Past the stale limit (10 s) with no sample: the title says since when.
    f.at(15.0).push(EventKind::Tick);
    let stale = f.screen(200, 50);
    assert!(
        line_with(&stale, "╭ Pooler").contains("✖ stale since"),
        "{stale}"
    );
}
