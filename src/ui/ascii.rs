//! `--ascii`: the same screen for terminals without box-drawing or symbol
//! glyphs (a serial console, `TERM=vt100`, an old bastion's font).
//!
//! Applied to the finished frame, cell by cell, so no pane needs a second
//! set of glyphs and the war-room digits fold like everything else. Each
//! glyph becomes one ASCII character chosen to keep its meaning in the
//! same cell; statuses keep their word beside the symbol, so `+ exact
//! match` and `x MISMATCH` still say what they are.

use ratatui::buffer::Buffer;

/// One cell's ASCII stand-in for a glyph.
pub fn glyph(c: char) -> char {
    match c {
        c if c.is_ascii() => c,
        // Lines and corners of every weight.
        '─' | '━' | '═' | '╌' | '┄' | '╴' | '╶' => '-',
        '│' | '┃' | '║' | '╎' | '┆' | '╵' | '╷' => '|',
        '┌' | '┐' | '└' | '┘' | '╭' | '╮' | '╰' | '╯' | '├' | '┤' | '┬' | '┴' | '┼' | '┏' | '┓'
        | '┗' | '┛' | '╔' | '╗' | '╚' | '╝' | '┣' | '┫' | '╠' | '╣' => '+',
        // Statuses: each keeps its word on the screen.
        '✔' | '✓' => '+',
        '✖' | '✘' | '×' => 'x',
        '⚠' | '❗' => '!',
        '●' | '◉' | '•' => '*',
        '○' | '◌' => 'o',
        'ℹ' => 'i',
        '✎' => '*',
        '❄' => '*',
        '⟳' => '~',
        '⏸' => '=',
        '■' => '#',
        // Directions.
        '▶' | '▸' | '→' | '►' => '>',
        '◀' | '◂' | '←' => '<',
        '▲' | '↑' => '^',
        '▼' | '↓' => 'v',
        '≥' => '>',
        '≤' => '<',
        '±' => '+',
        // Punctuation.
        '·' => '.',
        '…' => '~',
        '—' | '–' | '‐' => '-',
        // Bars, sparklines and big digits: how much of the cell is ink.
        '▁' | '▂' => '_',
        '▃' | '▄' => '=',
        '▅' | '▆' | '▇' | '█' | '▉' | '▊' | '▋' | '▌' | '▐' | '▀' => '#',
        '▍' | '▎' | '▏' => '|',
        '░' => '.',
        '▒' => ':',
        '▓' => '#',
        // Braille charts: a dot where there is any.
        '\u{2800}' => ' ',
        '\u{2801}'..='\u{28ff}' => '.',
        // Letters with marks, in names: the letter without them.
        c => deunicode::deunicode_char(c)
            .and_then(|s| s.chars().next())
            .filter(char::is_ascii_graphic)
            .unwrap_or('?'),
    }
}

/// Every cell of a rendered frame in ASCII.
pub fn fold(buf: &mut Buffer) {
    for cell in buf.content.iter_mut() {
        let symbol = cell.symbol();
        if symbol.is_ascii() {
            continue;
        }
        // A cell holds one grapheme: its first char decides, marks fall away.
        let c = symbol.chars().next().map_or(' ', glyph);
        let mut s = [0u8; 4];
        cell.set_symbol(c.encode_utf8(&mut s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::widgets::{Block, BorderType, Borders, Widget};

    #[test]
    fn every_glyph_the_panes_use_becomes_one_ascii_char() {
        let used = "·…✖—✔⚠×●─░▸⟳→▲○█↓■◌≥↑⏸–❄±ℹ└≤│✎◉▶┃├┤╭╮╰╯▁▂▃▄▅▆▇▀";
        for c in used.chars() {
            let a = glyph(c);
            assert!(a.is_ascii_graphic(), "{c} became {a:?}");
        }
        assert_eq!(glyph('✔'), '+');
        assert_eq!(glyph('✖'), 'x');
        assert_eq!(glyph('─'), '-');
        assert_eq!(glyph('é'), 'e');
        assert_eq!(glyph('q'), 'q');
    }

    #[test]
    fn a_framed_pane_folds_to_ascii_only() {
        let area = Rect::new(0, 0, 12, 3);
        let mut buf = Buffer::empty(area);
        Block::new()
            .borders(Borders::ALL)
            .border_type(BorderType::Rounded)
            .title("✔ lag")
            .render(area, &mut buf);
        fold(&mut buf);
        let text: String = buf.content.iter().map(|c| c.symbol()).collect();
        assert!(text.is_ascii(), "{text}");
        assert_eq!(&text[..12], "++ lag-----+");
        assert_eq!(&text[24..], "+----------+");
    }
}
