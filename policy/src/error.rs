use std::fmt;

/// One finding about a policy source: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the position is unknown.
    pub line: usize,
    /// 1-based; 0 when the position is unknown.
    pub column: usize,
    /// Field path in the document, e.g. `providers.openai.keys[0].key`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The policy crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sealed snapshot: {0}")]
    Sealed(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a snapshot and not UTF-8 YAML")]
    NotUtf8 { path: String },
    #[error("{}", render_all(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("invalid snapshot{}: {reason}", .file.as_deref().map(|f| format!(" {f}")).unwrap_or_default())]
    Snapshot {
        file: Option<String>,
        reason: String,
    },
    #[error("cannot archive policy: {0}")]
    Archive(String),
    #[error("cannot embed route utterances: {0}")]
    Embed(String),
}

impl Error {
    pub(crate) fn snapshot(reason: impl Into<String>) -> Self {
        Error::Snapshot {
            file: None,
            reason: reason.into(),
        }
    }

    /// Attach the file name to a snapshot error found while reading bytes.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::Snapshot { reason, .. } => Error::Snapshot {
                file: Some(path.display().to_string()),
                reason,
            },
            other => other,
        }
    }

    /// The diagnostics, when this is a validation failure.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid(d) => d,
            _ => &[],
        }
    }
}

fn render_all(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&d.to_string());
    }
    out
}
