//! A one-line text field (tui-textarea underneath): the name typed to
//! confirm a destructive step, an override's reason, an operator note.
//! Keys arrive by their names (`runtime::keys::name`), as the keymap sees
//! them: what the keymap does not bind goes here, editing keys included
//! (←/→, Home/End, Delete, and a shell's Ctrl-w, Ctrl-u, Ctrl-k).

use tui_textarea::{Input, Key, TextArea};

/// Longer than this is not what anyone meant to type.
pub const MAX_CHARS: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct Field(TextArea<'static>);

impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        self.0.lines() == other.0.lines() && self.0.cursor() == other.0.cursor()
    }
}

impl Eq for Field {}

/// A key name as tui-textarea reads it; None for keys a one-line field
/// has no use for (Enter, Tab, Esc are the keymap's).
fn input(key: &str) -> Option<Input> {
    let (ctrl, name) = match key.strip_prefix("Ctrl-") {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    // A shell's Ctrl-u deletes back to the start (tui-textarea's Ctrl-j);
    // tui-textarea's own Ctrl-u (undo) is not what a shell user means.
    let name = if ctrl && name == "u" { "j" } else { name };
    let key = match name {
        "Backspace" => Key::Backspace,
        "Delete" => Key::Delete,
        "Left" => Key::Left,
        "Right" => Key::Right,
        "Home" => Key::Home,
        "End" => Key::End,
        other => {
            let mut chars = other.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Key::Char(c),
                _ => return None,
            }
        }
    };
    Some(Input {
        key,
        ctrl,
        alt: false,
        shift: false,
    })
}

impl Field {
    /// Applies one key; false when the field has no use for it.
    pub fn key(&mut self, key: &str) -> bool {
        let Some(i) = input(key) else {
            return false;
        };
        // Ctrl-m is a newline to tui-textarea: a field is one line.
        if i.ctrl && i.key == Key::Char('m') {
            return false;
        }
        let typing = matches!(i.key, Key::Char(_)) && !i.ctrl;
        if typing && self.text().chars().count() >= MAX_CHARS {
            return false;
        }
        self.0.input(i);
        true
    }

    pub fn text(&self) -> &str {
        self.0.lines().first().map_or("", String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.text().is_empty()
    }

    pub fn clear(&mut self) {
        *self = Field::default();
    }

    /// The text with a block cursor where the next character goes, for a
    /// field that has the keys (the cursor only shows there).
    pub fn shown(&self, focused: bool) -> String {
        if !focused {
            return self.text().to_string();
        }
        let col = self.0.cursor().1;
        let text = self.text();
        let at = text.char_indices().nth(col).map_or(text.len(), |(i, _)| i);
        format!("{}█{}", &text[..at], &text[at..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keys: &[&str]) -> Field {
        let mut f = Field::default();
        for k in keys {
            f.key(k);
        }
        f
    }

    #[test]
    fn types_edits_and_shows_the_cursor() {
        let f = typed(&["a", "p", "p", "Left", "Left", "x"]);
        assert_eq!(f.text(), "axpp");
        assert_eq!(f.shown(true), "ax█pp");
        assert_eq!(f.shown(false), "axpp");
        let f = typed(&["a", "b", "c", "Backspace", "Home", "Delete"]);
        assert_eq!(f.text(), "b");
        let f = typed(&["a", "b", " ", "c", "Ctrl-w"]);
        assert_eq!(f.text(), "ab ", "Ctrl-w deletes the word before the cursor");
        let f = typed(&["a", "b", "c", "Left", "Ctrl-u"]);
        assert_eq!(f.text(), "c", "Ctrl-u deletes back to the start");
        let f = typed(&["a", "b", "c", "Home", "Ctrl-k"]);
        assert_eq!(f.text(), "", "Ctrl-k deletes to the end");
    }

    #[test]
    fn stays_one_line_and_bounded() {
        let f = typed(&["a", "Ctrl-m", "Enter", "Tab", "Esc", "b"]);
        assert_eq!(f.text(), "ab");
        let mut f = Field::default();
        for _ in 0..MAX_CHARS + 20 {
            f.key("x");
        }
        assert_eq!(f.text().chars().count(), MAX_CHARS);
    }

    #[test]
    fn unicode_cursor_positions_are_characters() {
        let f = typed(&["é", "ß", "Left"]);
        assert_eq!(f.shown(true), "é█ß");
    }
}
