//! Where the model files are, and whether they are the ones we expect.
//! `scripts/models.sh` writes the standard layout plus a `SHA256SUMS`
//! manifest; a user's own export is just a folder with `model.onnx` and
//! `tokenizer.json` (checked for presence only).

use crate::error::{ClassifierError, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The environment variable naming the model cache.
pub const MODEL_DIR_ENV: &str = "SWITCHYARD_MODEL_DIR";
/// ONNX Runtime's own variable for the shared library; honoured first.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";
const RUNTIME_FILE: &str = "libonnxruntime.so.1.31.1";
const ENCODER_SUBDIR: &str = "minilm";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// `libonnxruntime.so`.
    pub runtime: PathBuf,
    pub model: PathBuf,
    pub tokenizer: PathBuf,
    /// Optional `config.json`; a sequence classifier's label names live there.
    pub config: Option<PathBuf>,
    /// `sha256  relative/path` lines, when the folder came from models.sh.
    pub manifest: Option<PathBuf>,
}

impl ModelFiles {
    /// The standard cache layout under `dir` (see `scripts/models.sh`), or a
    /// flat folder holding `model.onnx` and `tokenizer.json`.
    pub fn in_dir(dir: &Path) -> ModelFiles {
        let nested = dir.join(ENCODER_SUBDIR);
        let model_dir = if nested.join("model.onnx").exists() {
            nested
        } else {
            dir.to_path_buf()
        };
        let runtime = std::env::var_os(DYLIB_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(RUNTIME_FILE));
        let config = model_dir.join("config.json");
        let manifest = dir.join("SHA256SUMS");
        ModelFiles {
            runtime,
            model: model_dir.join("model.onnx"),
            tokenizer: model_dir.join("tokenizer.json"),
            config: config.exists().then_some(config),
            manifest: manifest.exists().then_some(manifest),
        }
    }

    /// `SWITCHYARD_MODEL_DIR`, else `.cache/models` under the working
    /// directory (where `scripts/models.sh` puts it).
    pub fn from_env() -> ModelFiles {
        let dir = std::env::var_os(MODEL_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".cache/models"));
        ModelFiles::in_dir(&dir)
    }

    /// Every required file exists and matches the manifest, if there is one.
    /// The error names the first file that is missing or wrong.
    pub fn verify(&self) -> Result<()> {
        for path in [&self.runtime, &self.model, &self.tokenizer] {
            if !path.is_file() {
                return Err(ClassifierError::MissingFile {
                    path: path.display().to_string(),
                });
            }
        }
        let Some(manifest) = &self.manifest else {
            return Ok(());
        };
        let base = manifest.parent().unwrap_or(Path::new("."));
        let text = std::fs::read_to_string(manifest).map_err(|e| io(manifest, e))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some((expected, rel)) = line.split_once("  ") else {
                continue;
            };
            let path = base.join(rel.trim());
            // Only files we load are checked: a user may point
            // ORT_DYLIB_PATH at another runtime on purpose.
            if ![&self.runtime, &self.model, &self.tokenizer].contains(&&path) {
                continue;
            }
            let found = sha256_file(&path)?;
            if found != expected {
                return Err(ClassifierError::Checksum {
                    path: path.display().to_string(),
                    expected: expected.to_string(),
                    found,
                });
            }
        }
        Ok(())
    }
}

impl ModelFiles {
    /// sha256 of the model graph: from the manifest when there is one (it
    /// was just verified), else computed.
    pub fn model_id(&self) -> Result<String> {
        if let Some(manifest) = &self.manifest {
            let base = manifest.parent().unwrap_or(Path::new("."));
            let text = std::fs::read_to_string(manifest).map_err(|e| io(manifest, e))?;
            let listed = text.lines().find_map(|line| {
                let (sum, rel) = line.split_once("  ")?;
                (base.join(rel.trim()) == self.model).then(|| sum.to_string())
            });
            if let Some(sum) = listed {
                return Ok(sum);
            }
        }
        sha256_file(&self.model)
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn io(path: &Path, e: std::io::Error) -> ClassifierError {
    ClassifierError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_corrupt_files_are_named() {
        let dir = std::env::temp_dir().join(format!("sy-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("minilm")).unwrap();
        std::fs::write(dir.join("minilm/model.onnx"), b"model").unwrap();
        let mut files = ModelFiles::in_dir(&dir);
        files.runtime = dir.join("libonnxruntime.so.1.31.1");
        match files.verify() {
            Err(ClassifierError::MissingFile { path }) => {
                assert!(path.ends_with("libonnxruntime.so.1.31.1"))
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&files.runtime, b"rt").unwrap();
        std::fs::write(dir.join("minilm/tokenizer.json"), b"{}").unwrap();
        assert!(files.verify().is_ok(), "no manifest: presence is enough");
        let model_sum = sha256_file(&files.model).unwrap();
        std::fs::write(
            dir.join("SHA256SUMS"),
            format!(
                "{model_sum}  minilm/model.onnx\n{}  minilm/tokenizer.json\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        let files = ModelFiles {
            manifest: Some(dir.join("SHA256SUMS")),
            ..files
        };
        match files.verify() {
            Err(ClassifierError::Checksum { path, .. }) => {
                assert!(path.ends_with("tokenizer.json"))
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
