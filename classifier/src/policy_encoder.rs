//! The classifier as the policy compiler's utterance encoder, so route
//! vectors and prompt vectors come from the same network and window-free
//! text (utterances are short; they are embedded as written).

use crate::encoder::Encoder;
use crate::service::ClassifierService;

/// An [`Encoder`] with the id of the graph it runs.
pub struct RouteEncoder {
    pub encoder: Encoder,
    pub model_id: String,
}

impl policy::UtteranceEncoder for RouteEncoder {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(16) {
            let dim = self.encoder.dim();
            let vectors = self.encoder.embed(chunk).map_err(|e| e.to_string())?;
            // Routes compare sentence vectors: the end segments a label
            // head may ask for are not part of them.
            out.extend(vectors.into_iter().map(|mut v| {
                v.truncate(dim);
                v
            }));
        }
        Ok(out)
    }
}

/// The engine's running service, for a YAML policy loaded at start-up or
/// on reload (a blocking call on the reload thread, never a request's).
pub struct ServiceEncoder<'a>(pub &'a ClassifierService);

impl policy::UtteranceEncoder for ServiceEncoder<'_> {
    fn model_id(&self) -> String {
        self.0.model_id().to_string()
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        texts
            .iter()
            .map(|t| {
                // The sentence vector only (see RouteEncoder::embed).
                self.0
                    .embed_blocking(t)
                    .map(|e| e.vector.get(..self.0.dim()).unwrap_or(&e.vector).to_vec())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}
