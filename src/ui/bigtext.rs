//! Big text for the war-room screen: numbers a room can read off a
//! compressed video stream. A 3×5 pixel font (the digits, `.` `:` `-` `?`
//! and the letters of the byte units), drawn with `█ ▀ ▄` two pixel rows to
//! a terminal row, at a few scales: 3 rows tall at the smallest, then 5
//! and 10. A pixel is about as wide as it is tall on a usual terminal cell
//! (a cell is twice as tall as wide), so every scale keeps the same shape;
//! above the smallest a pixel is a whole number of rows, never a half
//! block in the middle of a stroke.

/// Pixel rows of a glyph.
pub const GLYPH_ROWS: usize = 5;

/// A glyph, row by row, `#` for a lit pixel. Narrow glyphs (`.`, `:`, `i`)
/// are one pixel wide, a space two; none has an empty column, so glyphs
/// are told apart by the one empty column between them.
pub fn glyph(c: char) -> Option<[&'static str; GLYPH_ROWS]> {
    Some(match c {
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["###", "..#", "###", "#..", "###"],
        '3' => ["###", "..#", ".##", "..#", "###"],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "###", "..#", "###"],
        '6' => ["###", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", "..#", "..#", "..#"],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "###"],
        '.' => [".", ".", ".", ".", "#"],
        ':' => [".", "#", ".", "#", "."],
        '-' => ["...", "...", "###", "...", "..."],
        '?' => ["###", "..#", ".##", "...", ".#."],
        'B' => ["##.", "#.#", "##.", "#.#", "##."],
        'K' => ["#.#", "#.#", "##.", "#.#", "#.#"],
        'M' => ["#.#", "###", "###", "#.#", "#.#"],
        'G' => [".##", "#..", "#.#", "#.#", ".##"],
        'T' => ["###", ".#.", ".#.", ".#.", ".#."],
        'P' => ["###", "#.#", "###", "#..", "#.."],
        'i' => ["#", ".", "#", "#", "#"],
        ' ' => ["..", "..", "..", "..", ".."],
        _ => return None,
    })
}

/// How big: each pixel `sx` columns wide and `sy` half-rows tall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub sx: u16,
    pub sy: u16,
}

/// From the smallest (3 rows) to the largest (10 rows, 12 columns a digit).
pub const SCALES: [Scale; 4] = [
    Scale { sx: 1, sy: 1 },
    Scale { sx: 2, sy: 2 },
    Scale { sx: 3, sy: 4 },
    Scale { sx: 4, sy: 4 },
];

impl Scale {
    /// Terminal rows the text takes.
    pub fn height(self) -> u16 {
        (GLYPH_ROWS as u16 * self.sy).div_ceil(2)
    }
}

/// Whether every character of `text` has a glyph.
pub fn drawable(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| glyph(c).is_some())
}

/// Columns `text` takes at `scale`: glyphs and the one-pixel gaps between.
pub fn width(text: &str, scale: Scale) -> u16 {
    let px: usize = text.chars().filter_map(glyph).map(|g| g[0].len() + 1).sum();
    px.saturating_sub(1) as u16 * scale.sx
}

/// The largest scale at which each of `texts` fits in `w`×`h`; None when
/// even the smallest does not (or a character has no glyph).
pub fn largest(texts: &[&str], w: u16, h: u16) -> Option<Scale> {
    if !texts.iter().all(|t| drawable(t)) {
        return None;
    }
    SCALES
        .iter()
        .rev()
        .copied()
        .find(|s| s.height() <= h && texts.iter().all(|t| width(t, *s) <= w))
}

/// `text` in big type at `scale`, one string per terminal row, every row
/// [`width`] columns wide. Characters without a glyph are left out.
pub fn lines(text: &str, scale: Scale) -> Vec<String> {
    // The pixels, one row per half terminal row.
    let mut px: Vec<Vec<bool>> = vec![Vec::new(); GLYPH_ROWS];
    for (i, g) in text.chars().filter_map(glyph).enumerate() {
        for (r, row) in g.iter().enumerate() {
            if i > 0 {
                px[r].push(false);
            }
            px[r].extend(row.chars().map(|c| c == '#'));
        }
    }
    let (sx, sy) = (usize::from(scale.sx), usize::from(scale.sy));
    let half_rows = GLYPH_ROWS * sy;
    let lit = |half: usize, col: usize| half < half_rows && px[half / sy][col / sx];
    let cols = px[0].len() * sx;
    (0..usize::from(scale.height()))
        .map(|row| {
            (0..cols)
                .map(|col| match (lit(2 * row, col), lit(2 * row + 1, col)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_five_rows_of_one_width_with_no_empty_column() {
        for c in "0123456789.:-?BKMGTPi".chars() {
            let g = glyph(c).unwrap();
            let w = g[0].len();
            assert!(g.iter().all(|r| r.len() == w), "{c}");
            for col in 0..w {
                assert!(
                    g.iter().any(|r| r.as_bytes()[col] == b'#'),
                    "{c} has an empty column {col}"
                );
            }
        }
        // Two glyphs drawn alike could not be read back.
        let all: Vec<char> = "0123456789.:-?BKMGTPi".chars().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(glyph(*a), glyph(*b), "{a} and {b}");
            }
        }
    }

    #[test]
    fn three_rows_at_the_smallest_scale_with_half_blocks() {
        let l = lines("1.5", SCALES[0]);
        assert_eq!(
            l,
            vec![
                "▄█    █▀▀".to_string(),
                " █    ▀▀█".to_string(),
                "▀▀▀ ▀ ▀▀▀".to_string(),
            ]
        );
        assert_eq!(width("1.5", SCALES[0]), 9);
        assert!(l.iter().all(|r| r.chars().count() == 9));
    }

    #[test]
    fn scales_grow_in_both_directions() {
        let heights: Vec<u16> = SCALES.iter().map(|s| s.height()).collect();
        assert_eq!(heights, vec![3, 5, 10, 10]);
        let l = lines("0:12", SCALES[1]);
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].chars().count(), usize::from(width("0:12", SCALES[1])));
        assert_eq!(width("0:12", SCALES[1]), 2 * width("0:12", SCALES[0]));
        // Full blocks only where both halves are lit: an even scale has no half blocks.
        for s in &SCALES[1..] {
            assert!(lines("0123456789.:-?BKMGTPi", *s)
                .iter()
                .all(|r| !r.contains('▀') && !r.contains('▄')));
        }
    }

    #[test]
    fn the_largest_scale_that_fits() {
        assert_eq!(largest(&["1.5 MiB"], 200, 50), Some(SCALES[3]));
        let w = width("1.5 MiB", SCALES[1]);
        assert_eq!(largest(&["1.5 MiB"], w, 5), Some(SCALES[1]));
        assert_eq!(largest(&["1.5 MiB"], w - 1, 5), Some(SCALES[0]));
        assert_eq!(largest(&["1.5 MiB"], 200, 2), None, "too short");
        assert_eq!(largest(&["12 s"], 200, 50), None, "no glyph for s");
    }
}
