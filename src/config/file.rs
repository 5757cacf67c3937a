//! Reading small text files (cutover.toml, themes, pg_service.conf) without
//! trusting them to be small or even to be files.
//!
//! `cutover -c /dev/zero` must fail at once instead of filling memory, and a
//! FIFO nobody writes to must not hang the console before it starts.

use std::io::Read;
use std::path::Path;

/// The most any of these files may hold; real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file was not read. Displayed after the path: `PATH: {this}`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is {0}, not a regular file; is this the right file?")]
    NotAFile(&'static str),
    #[error("larger than {}; is this the right file?", human_limit(*.0))]
    TooLarge(u64),
}

fn human_limit(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Reads at most `limit` bytes of a regular file (symlinks followed).
///
/// The type is checked before opening (opening a FIFO blocks until a writer
/// appears) and again on the open handle; the read itself stops one byte past
/// the limit, so a file that grows while being read cannot exhaust memory.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(meta.file_type())));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_directories_and_fifos_at_once() {
        let e = read_limited(Path::new("/dev/zero"), MAX_FILE_BYTES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a character device, not a regular file; is this the right file?"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read_limited(dir.path(), MAX_FILE_BYTES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a directory, not a regular file; is this the right file?"
        );
        // Nobody ever writes to this FIFO: opening it for reading would block.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = read_limited(&fifo, MAX_FILE_BYTES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a FIFO, not a regular file; is this the right file?"
        );
    }

    #[test]
    fn enforces_the_limit_to_the_byte() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![b'x'; 1024]).unwrap();
        assert_eq!(read_limited(&f, 1024).unwrap().len(), 1024);
        let e = read_limited(&f, 1023).unwrap_err();
        assert_eq!(
            e.to_string(),
            "larger than 1023 bytes; is this the right file?"
        );
        assert_eq!(
            ReadError::TooLarge(MAX_FILE_BYTES).to_string(),
            "larger than 1 MiB; is this the right file?"
        );
        let e = read_limited(&dir.path().join("missing"), 10).unwrap_err();
        assert!(matches!(e, ReadError::Io(_)), "{e}");
    }
}
