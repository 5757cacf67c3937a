//! Key presses get stable names, so the log reads like what the operator typed.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub fn name(key: &KeyEvent) -> Option<String> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let base = match key.code {
        KeyCode::Char(c) if ctrl => return Some(format!("Ctrl-{}", c.to_ascii_lowercase())),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "BackTab".into(),
        KeyCode::Backspace => "Backspace".into(),
        KeyCode::Up => "Up".into(),
        KeyCode::Down => "Down".into(),
        KeyCode::Left => "Left".into(),
        KeyCode::Right => "Right".into(),
        KeyCode::PageUp => "PageUp".into(),
        KeyCode::PageDown => "PageDown".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Delete => "Delete".into(),
        KeyCode::F(n) => format!("F{n}"),
        _ => return None,
    };
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let k = |code, m| KeyEvent::new(code, m);
        assert_eq!(
            name(&k(KeyCode::Char('c'), KeyModifiers::NONE)).as_deref(),
            Some("c")
        );
        assert_eq!(
            name(&k(KeyCode::Char('C'), KeyModifiers::CONTROL)).as_deref(),
            Some("Ctrl-c")
        );
        assert_eq!(
            name(&k(KeyCode::Up, KeyModifiers::NONE)).as_deref(),
            Some("Up")
        );
        assert_eq!(name(&k(KeyCode::Null, KeyModifiers::NONE)), None);
    }
}
