//! One full frame at 200×50 and 80×24, drawn from a real recorded session,
//! beside a floor: ratatui drawing a full screen of plain text in one Paragraph.
//! The ratio (view / floor) is what the closing notes report.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ratatui::backend::TestBackend;
use ratatui::widgets::Paragraph;
use ratatui::Terminal;

use cutover::model::{update, Model};
use cutover::session::log::read_all;
use cutover::ui::{theme::Theme, view};

fn example_model() -> Model {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/sessions/example-demo.jsonl");
    let events =
        read_all(std::path::Path::new(path)).expect("the example session ships in sessions/");
    let mut model = Model::default();
    // The screen as it was just before the operator quit.
    for ev in events
        .iter()
        .filter(|e| !matches!(e.kind, cutover::session::EventKind::SessionEnded { .. }))
    {
        update(&mut model, ev);
    }
    model
}

fn bench(c: &mut Criterion) {
    let model = example_model();
    // The same theme wherever it runs: Theme::from_env reads NO_COLOR and TERM.
    let theme = Theme::default();
    for (w, h) in [(200u16, 50u16), (80, 24)] {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        c.bench_function(&format!("view {w}x{h}"), |b| {
            b.iter(|| {
                term.draw(|f| {
                    view(
                        f,
                        black_box(&model),
                        &cutover::model::View::default(),
                        &theme,
                    )
                })
                .unwrap();
            })
        });
        let text: String = (0..h)
            .map(|i| format!("{:w$}\n", format!("line {i} of plain text"), w = w as usize))
            .collect();
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        c.bench_function(&format!("floor paragraph {w}x{h}"), |b| {
            b.iter(|| {
                term.draw(|f| f.render_widget(Paragraph::new(black_box(text.as_str())), f.area()))
                    .unwrap();
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
