//! The dev state directory: where `bedside dev` and `bedside token` keep the generated dev
//! token key, so tokens printed by one command are accepted by the other.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// The issuer of dev tokens.
pub const DEV_ISSUER: &str = "bedside-dev";

const KEY_FILE: &str = "dev-token-key";

/// The dev state directory: `--state-dir`, else `$BEDSIDE_STATE_DIR`, else
/// `$XDG_STATE_HOME/bedside`, else `~/.local/state/bedside`.
pub fn state_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("BEDSIDE_STATE_DIR") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(p).join("bedside");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".local/state/bedside")
}

/// Loads the dev token key from `dir`, creating the directory and a random key on first use.
pub fn load_or_create_dev_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    load_or_create_secret(dir, KEY_FILE)
}

/// Loads the secret in `dir/name`, creating a random one (64 hex characters) on first use.
/// Each dev secret has its own file: the token key and the TURN secret are never the same.
pub fn load_or_create_secret(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged: delete it to generate a new dev key",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_dir_private(dir)?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // Write to a temporary file and rename, so a crash never leaves half a key behind and two
    // processes racing both end up with one key.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    {
        let mut f = open_private(&tmp)?;
        f.write_all(key.as_bytes())?;
        f.sync_all()?;
    }
    if path.exists() {
        std::fs::remove_file(&tmp)?;
        return load_or_create_secret(dir, name);
    }
    std::fs::rename(&tmp, &path)?;
    Ok(key.into_bytes())
}

#[cfg(unix)]
fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state");
        let a = load_or_create_dev_key(&sub).unwrap();
        let b = load_or_create_dev_key(&sub).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(sub.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is private");
        }
    }

    #[test]
    fn a_damaged_key_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "short").unwrap();
        let e = load_or_create_dev_key(dir.path()).unwrap_err();
        assert!(e.to_string().contains("damaged"));
    }
}
