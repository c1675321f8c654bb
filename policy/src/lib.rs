//! The Switchyard policy: what operators write (YAML), what the engine runs
//! (a compiled, archived [`CompiledPolicy`]) and the snapshot file between them.
//!
//! Flow: [`compile_yaml`] (parse → interpolate `${ENV}` → validate → build)
//! produces a [`CompiledPolicy`]; [`snapshot::encode`] archives it with rkyv
//! behind a small header; [`Snapshot::from_bytes`] validates a snapshot once
//! and then serves zero-copy reads of the archived policy.
#![deny(unsafe_code)]

pub mod compat;
mod compile;
pub mod embed;
mod error;
pub mod interpolate;
pub mod keys;
mod model;
pub mod sealed;
pub mod snapshot;
mod spec;
mod yaml_index;

pub use compile::{compile_yaml, Compiled, EnvLookup, ProcessEnv};
pub use embed::{embed_routes, needs_embedding, UtteranceEncoder};
pub use error::{Diagnostic, Error};
pub use model::*;
pub use snapshot::{Snapshot, SnapshotHeader, FORMAT_VERSION};

/// Compile a policy file from disk (YAML) with the process environment.
pub fn compile_file(path: &std::path::Path) -> Result<Compiled, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    compile_yaml(&text, &path.display().to_string(), &ProcessEnv)
}

/// Load either a compiled snapshot or a YAML policy (compiled in memory),
/// telling them apart by the snapshot magic.
pub fn load_path(path: &std::path::Path) -> Result<Loaded, Error> {
    load_path_with(path, None)
}

/// [`load_path`], embedding the route utterances of a YAML policy with
/// `encoder`. Without one, such routes stay without vectors (a warning);
/// the engine then skips their rules.
pub fn load_path_with(
    path: &std::path::Path,
    encoder: Option<&mut dyn UtteranceEncoder>,
) -> Result<Loaded, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    if snapshot::looks_like_snapshot(&bytes) {
        let snap = Snapshot::from_bytes(&bytes).map_err(|e| e.in_file(path))?;
        return Ok(Loaded {
            snapshot: snap,
            warnings: Vec::new(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        path: path.display().to_string(),
    })?;
    let mut compiled = compile_yaml(&text, &path.display().to_string(), &ProcessEnv)?;
    if needs_embedding(&compiled.policy) {
        match encoder {
            Some(encoder) => embed_routes(&mut compiled.policy, encoder)?,
            None => compiled.warnings.push(Diagnostic {
                file: path.display().to_string(),
                line: 0,
                column: 0,
                path: "classifier.routes".into(),
                message: "no encoder to embed the route utterances: their rules are skipped (compile with policyc, or install the model files)".into(),
            }),
        }
    }
    let bytes = snapshot::encode(&compiled.policy, snapshot::now_unix())?;
    Ok(Loaded {
        snapshot: Snapshot::from_bytes(&bytes)?,
        warnings: compiled.warnings,
    })
}

/// A validated snapshot plus the non-fatal findings of compiling it.
pub struct Loaded {
    pub snapshot: Snapshot,
    pub warnings: Vec<Diagnostic>,
}
