//! The infrastructure's own input files (environment files, templates,
//! workflows, workloads, price tables): reading them, parsing their YAML,
//! and one error that names the file and, where it can, the key.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// What the file says is wrong: its syntax, a key, a value.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

impl FileError {
    pub fn invalid(file: &str, message: impl Into<String>) -> Self {
        FileError::Invalid {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

/// A file's name (for errors) and its text.
pub fn read(path: &Path) -> Result<(String, String), FileError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(source) => Err(FileError::Io { file, source }),
    }
}

/// Parses YAML into `T`, naming the key of any error; then `check`s what
/// the types cannot (ranges, formats, consistency).
pub fn parse_yaml<T: DeserializeOwned>(
    file: &str,
    text: &str,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, FileError> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| FileError::invalid(file, format!("{}: {}", e.path(), e.inner())))?;
    check(&value).map_err(|message| FileError::invalid(file, message))?;
    Ok(value)
}
