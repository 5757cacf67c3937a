//! The sequence step on real clusters: serial and identity columns, both
//! read on the source and set on the target past the source's values (plus
//! the stride), never lowered, and a sequence missing on the target refused
//! before anything changes. In a database of its own (`seqs`).

mod common;

use cutover::runtime::sequences::advance;
use cutover::session::Side;

const DB: &str = "seqs";

fn source_sql(sql: &str) -> String {
    let pair = common::pair();
    pair.psql(&pair.source_db(DB), sql).trim().to_string()
}

fn target_sql(sql: &str) -> String {
    let pair = common::pair();
    pair.psql(&pair.target_db(DB), sql).trim().to_string()
}

/// The pair's config, pointed at `seqs` on both sides.
fn config() -> cutover::config::Config {
    let pair = common::pair();
    let text = std::fs::read_to_string(&pair.config_path).unwrap();
    let path = pair.config_path.with_file_name("seqs.toml");
    std::fs::write(&path, text.replace("dbname=app", &format!("dbname={DB}"))).unwrap();
    cutover::config::load(&path).expect("the seqs config loads")
}

/// The target's value of each sequence, in name order.
fn target_values() -> String {
    target_sql("SELECT string_agg(sequencename || '=' || coalesce(last_value::text, '-'), ' ' ORDER BY 1) FROM pg_sequences WHERE schemaname = 'public'")
}

#[tokio::test]
async fn sequences_are_set_past_the_source_never_lowered_and_a_missing_one_refused() {
    let pair = common::pair();
    for conninfo in [pair.source_db("postgres"), pair.target_db("postgres")] {
        pair.psql(&conninfo, &format!("CREATE DATABASE {DB}"));
    }
    source_sql(
        "CREATE TABLE public.orders (id serial PRIMARY KEY, v int); \
         CREATE TABLE public.events (id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int); \
         CREATE SEQUENCE public.unused;",
    );
    cutover::lab::copy_schema(&pair.bin, &pair.source_db(DB), &pair.target_db(DB))
        .expect("schema copy");
    source_sql(
        "INSERT INTO public.orders (v) SELECT g FROM generate_series(1, 250) g; \
         INSERT INTO public.events (v) SELECT g FROM generate_series(1, 40) g;",
    );
    let config = config();
    let schemas = vec!["public".to_string()];

    let values = advance(&config, &schemas, 0, Side::Target)
        .await
        .expect("advance");
    type Row = (String, Option<i64>, Option<i64>, Option<i64>);
    let shown: Vec<Row> = values
        .iter()
        .map(|v| (v.name.clone(), v.source, v.target_before, v.set_to))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("public.events_id_seq".into(), Some(40), None, Some(40)),
            ("public.orders_id_seq".into(), Some(250), None, Some(250)),
            ("public.unused".into(), None, None, None),
        ]
    );
    assert_eq!(
        target_values(),
        "events_id_seq=40 orders_id_seq=250 unused=-"
    );
    // The application's next insert on the target takes a fresh key.
    assert_eq!(
        target_sql("INSERT INTO public.orders (v) VALUES (0) RETURNING id"),
        "251"
    );

    // Again: nothing behind, nothing changed (orders is past the source now).
    let again = advance(&config, &schemas, 0, Side::Target).await.unwrap();
    assert!(again.iter().all(|v| v.set_to.is_none()), "{again:?}");
    assert_eq!(
        cutover::runtime::sequences::said(&again, Side::Target),
        "all 3 sequences already at or past the source's: nothing changed"
    );

    // A stride leaves a margin; a sequence ahead on the target is not lowered.
    source_sql("INSERT INTO public.events (v) VALUES (1)");
    let strided = advance(&config, &schemas, 1000, Side::Target)
        .await
        .unwrap();
    let events = strided
        .iter()
        .find(|v| v.name == "public.events_id_seq")
        .unwrap();
    assert_eq!((events.source, events.set_to), (Some(41), Some(1041)));
    let orders = strided
        .iter()
        .find(|v| v.name == "public.orders_id_seq")
        .unwrap();
    assert_eq!(orders.set_to, Some(1250));

    // A sequence only the source has: refused, and nothing was set.
    source_sql("CREATE SEQUENCE public.only_here; SELECT nextval('public.only_here'); INSERT INTO public.events (v) VALUES (2)");
    let before = target_values();
    let err = advance(&config, &schemas, 0, Side::Target)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("missing on the target (public.only_here)")
            && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_eq!(target_values(), before);
}
