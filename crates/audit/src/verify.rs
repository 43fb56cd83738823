//! Reading a log back and checking its chain.

use std::io::{BufRead, Read};
use std::path::Path;

use crate::entry::{is_rfc3339_millis, Entry, GENESIS, MAX_LINE_BYTES};
use crate::{AuditError, VerifyReport};

/// Checks every line of `reader` (the contents of the log at `path`, used in messages only).
///
/// A line is accepted only if it is byte for byte the canonical serialization of the entry it
/// parses to, so no edit can hide behind JSON's freedom (whitespace, key order, escapes).
pub(crate) fn verify_reader<R: BufRead>(
    mut reader: R,
    path: &Path,
) -> Result<VerifyReport, AuditError> {
    let broken = |line: u64, reason: String| AuditError::Broken {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut entries = 0u64;
    let mut last_hash = GENESIS.to_string();
    let mut buf = Vec::with_capacity(512);
    loop {
        let line_no = entries + 1;
        buf.clear();
        let limit = u64::try_from(MAX_LINE_BYTES + 1).expect("the line cap fits in u64");
        let n = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| AuditError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            if buf.len() > MAX_LINE_BYTES {
                return Err(broken(
                    line_no,
                    format!("line is longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            return Err(broken(
                line_no,
                "the last line has no trailing newline (a write cut short, e.g. by a crash); \
                 the entry is incomplete"
                    .into(),
            ));
        }
        let body = &buf[..buf.len() - 1];
        check_line(body, line_no, &last_hash).map_err(|reason| broken(line_no, reason))?;
        // check_line has confirmed the hash; take it from the parsed entry.
        let entry: Entry =
            serde_json::from_slice(body).map_err(|e| broken(line_no, e.to_string()))?;
        last_hash = entry
            .hash
            .expect("check_line refuses an entry without a hash");
        entries = line_no;
    }
    Ok(VerifyReport { entries, last_hash })
}

/// Checks one line (without its newline) as entry number `expected_seq` after `prev_hash`.
fn check_line(body: &[u8], expected_seq: u64, prev_hash: &str) -> Result<(), String> {
    if body.is_empty() {
        return Err("empty line".into());
    }
    let entry: Entry =
        serde_json::from_slice(body).map_err(|e| format!("not a valid audit entry: {e}"))?;
    let Some(hash) = entry.hash.as_deref() else {
        return Err("the entry has no hash".into());
    };
    if entry.line() != body {
        return Err("the line is not in canonical form (edited or rewritten)".into());
    }
    if entry.seq != expected_seq {
        return Err(format!(
            "sequence number is {} where {expected_seq} was expected (an entry was removed, \
             inserted or moved)",
            entry.seq
        ));
    }
    if entry.prev != prev_hash {
        return Err(
            "`prev` does not match the previous entry's hash (an entry was removed, \
                    inserted, moved or rewritten)"
                .into(),
        );
    }
    if entry.compute_hash() != hash {
        return Err("`hash` does not match the entry's contents (the entry was edited)".into());
    }
    if entry.kind.is_empty() {
        return Err("the entry has an empty `kind`".into());
    }
    if !is_rfc3339_millis(&entry.ts) {
        return Err("`ts` is not an RFC 3339 UTC timestamp with milliseconds".into());
    }
    Ok(())
}
