//! What can go wrong with the store. Messages name files and tables, never message bodies.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (a running `bedside serve`) holds the store's lock.
    #[error("the store {0} is in use by another process")]
    InUse(PathBuf),
    #[error("cannot open the store {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// The file was written by a newer Bedside whose tables this one cannot read.
    #[error(
        "the store {path} has schema {found}; this bedside reads schema {supported} and older"
    )]
    Schema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    /// A stored record does not decode (the file was changed outside Bedside).
    #[error("the store holds a damaged record in {table}")]
    Corrupt { table: &'static str },
    /// A name or argument is outside its bounds.
    #[error("{0}")]
    Invalid(&'static str),
    /// The entry an update names is not (or no longer) in the store.
    #[error("no such outbox entry")]
    NotFound,
    #[error("store: {0}")]
    Db(#[from] redb::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
