//! The process-wide ONNX Runtime environment. `load-dynamic` binds one
//! shared library per process and ONNX Runtime allows one environment, so
//! the first successful load wins and later calls reuse it.

use crate::error::{ClassifierError, Result};
use ort::environment::Environment;
use std::path::Path;
use std::sync::OnceLock;

static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

pub fn environment(dylib: &Path) -> Result<Environment> {
    if !dylib.is_file() {
        return Err(ClassifierError::MissingFile {
            path: dylib.display().to_string(),
        });
    }
    let env = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(dylib).map_err(|e| e.to_string())?;
        builder
            .with_name("switchyard-classifier")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    });
    env.clone().map_err(|message| ClassifierError::Runtime {
        path: dylib.display().to_string(),
        message,
    })
}
