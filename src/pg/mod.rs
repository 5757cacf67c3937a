//! PostgreSQL: connections, monitoring queries, the collectors, exact counts.

pub mod collector;
pub mod conn;
pub mod count;
pub mod monitor;

/// The server's message (with its SQLSTATE) rather than tokio-postgres's generic
/// "db error", so the screen says what actually failed.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
