//! Which errors pass and which do not: the one place the report node decides whether a write
//! that failed is retried (the flow keeps the FlowFile and tries again; the source keeps the
//! photo) or routed to `failure` (the record itself can never be written).
//!
//! The rule: trouble with *where* the record goes — a database that is down, hung, restarting,
//! out of connections or disk; a full or read-only disk; a media directory that cannot be
//! written — passes (an operator or time fixes it), so it is retried without end, which builds
//! back pressure instead of losing photos. Only a record the store rejects *for what it is*
//! (invalid data, a constraint other than the idempotent uuid conflict) is final.
//!
//! | where | retried (transient) | final (`failure`) |
//! |---|---|---|
//! | files (media, JSON lines) | every I/O error except those on the right: `ENOSPC`, `EDQUOT`, `EIO`, `EROFS`, permission denied, not a directory, not found, timeouts, ... | invalid input / data, invalid file name, unsupported |
//! | PostgreSQL, no SQLSTATE | connection refused / reset / closed, timeouts, any I/O error | — |
//! | PostgreSQL SQLSTATE | every class except those on the right, including `08` connection, `53` insufficient resources, `57` operator intervention (shutdown, query canceled), `58` system error, `40001`/`40P01`, `55P03` lock not available, `42501` insufficient privilege, `42P01` undefined table, `28` authorization | `22` data exception, `23` integrity constraint, `42` syntax / access rule (but `42501`, `42P01`), `0A` feature not supported |
//! | SQLite | busy, locked, I/O error, disk full, cannot open, read-only, out of memory, permission, protocol, corrupt, interrupted, schema changed | constraint, too big, type mismatch, range, misuse, and errors that are not SQLite's (a value that cannot be converted) |

use std::io;

/// Whether a failed file write (media, JSON lines) should be retried: everything but errors
/// about the data or the name itself.
pub fn io_is_transient(error: &io::Error) -> bool {
    !matches!(
        error.kind(),
        io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidFilename
            | io::ErrorKind::Unsupported
    )
}

/// Whether a PostgreSQL SQLSTATE (five characters) means trouble that passes.
pub fn sqlstate_is_transient(code: &str) -> bool {
    // The record is the problem: retrying it would never succeed.
    let permanent_class = ["22", "23", "42", "0A"];
    let transient_exceptions = ["42501", "42P01"];
    if transient_exceptions.contains(&code) {
        return true;
    }
    !permanent_class.iter().any(|class| code.starts_with(class))
}

/// Whether a tokio-postgres error means trouble that passes: every error that is not the
/// server rejecting the statement passes (connection refused, reset or closed, I/O, a
/// protocol error on a broken connection); a server error by its SQLSTATE.
pub fn postgres_is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(state) if !error.is_closed() => sqlstate_is_transient(state.code()),
        _ => true,
    }
}

/// Whether a rusqlite error means trouble that passes.
pub fn sqlite_is_transient(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::DiskFull
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
                | C::PermissionDenied
                | C::FileLockingProtocolFailed
                | C::DatabaseCorrupt
                | C::NotADatabase
                | C::OperationInterrupted
                | C::OperationAborted
                | C::SchemaChanged
                | C::NoLargeFileSupport
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_fail_transiently_unless_the_data_or_name_is_wrong() {
        for errno in [
            28,  /* ENOSPC */
            5,   /* EIO */
            30,  /* EROFS */
            13,  /* EACCES */
            20,  /* ENOTDIR */
            122, /* EDQUOT */
        ] {
            assert!(
                io_is_transient(&io::Error::from_raw_os_error(errno)),
                "errno {errno}"
            );
        }
        assert!(io_is_transient(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(!io_is_transient(&io::Error::from(
            io::ErrorKind::InvalidData
        )));
        assert!(!io_is_transient(&io::Error::from(
            io::ErrorKind::InvalidFilename
        )));
    }

    #[test]
    fn sqlstates_are_classified_by_class() {
        for code in [
            "08006", "08001", "53100", "53300", "57P01", "57P03", "57014", "40001", "40P01",
            "55P03", "58030", "42501", "42P01", "28P01", "XX001",
        ] {
            assert!(sqlstate_is_transient(code), "{code} passes");
        }
        for code in [
            "22021", "22P05", "23505", "23502", "42601", "42703", "0A000",
        ] {
            assert!(!sqlstate_is_transient(code), "{code} is final");
        }
    }

    #[test]
    fn sqlite_errors_are_classified_by_code() {
        let failure = |code: i32| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".into()))
        };
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_CANTOPEN,
            rusqlite::ffi::SQLITE_READONLY,
        ] {
            assert!(sqlite_is_transient(&failure(code)), "{code}");
        }
        for code in [
            rusqlite::ffi::SQLITE_CONSTRAINT,
            rusqlite::ffi::SQLITE_TOOBIG,
            rusqlite::ffi::SQLITE_MISMATCH,
        ] {
            assert!(!sqlite_is_transient(&failure(code)), "{code}");
        }
        assert!(!sqlite_is_transient(&rusqlite::Error::InvalidQuery));
    }
}
