//! The encoder off the request path: dedicated threads, each owning an
//! ONNX Runtime session, fed by one bounded queue. A thread takes the
//! first waiting job and every job queued behind it (up to `max_batch`)
//! and runs them as one padded batch, so concurrent requests share a pass
//! without anyone waiting for a batch to fill. Results are cached by
//! window hash before they are handed back.

use crate::cache::EmbeddingCache;
use crate::encoder::{Encoder, EncoderOptions};
use crate::error::{ClassifierError, Result};
use crate::files::ModelFiles;
use crate::window::window_key;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub threads: usize,
    pub max_batch: usize,
    /// Jobs waiting beyond this are refused (the caller skips its
    /// classifier rules) rather than queued without bound.
    pub queue: usize,
    pub cache_entries: usize,
    pub encoder: EncoderOptions,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            threads: 1,
            max_batch: 8,
            queue: 256,
            cache_entries: 16_384,
            encoder: EncoderOptions::default(),
        }
    }
}

/// One prompt's pooled vector.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vector: Arc<[f32]>,
    pub cached: bool,
    pub latency: Duration,
}

#[derive(Debug, Default)]
pub struct ServiceStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub batches: AtomicU64,
    pub batched_prompts: AtomicU64,
    pub errors: AtomicU64,
    pub refused: AtomicU64,
    /// Sum of encoder pass durations, in microseconds.
    pub inference_micros: AtomicU64,
}

type Reply = tokio::sync::oneshot::Receiver<Result<Arc<[f32]>>>;

enum Lookup {
    Hit(Arc<[f32]>),
    Queued(Reply),
}

impl Embedded {
    fn cached(vector: Arc<[f32]>, start: Instant) -> Embedded {
        Embedded {
            vector,
            cached: true,
            latency: start.elapsed(),
        }
    }

    fn computed(vector: Arc<[f32]>, start: Instant) -> Embedded {
        Embedded {
            vector,
            cached: false,
            latency: start.elapsed(),
        }
    }
}

struct Job {
    text: String,
    key: u64,
    reply: tokio::sync::oneshot::Sender<Result<Arc<[f32]>>>,
}

pub struct ClassifierService {
    tx: Sender<Job>,
    cache: Arc<EmbeddingCache>,
    stats: Arc<ServiceStats>,
    model_id: String,
    dim: usize,
    feature_dim: usize,
}

impl ClassifierService {
    /// Loads one encoder per thread (the first synchronously, so a missing
    /// or broken model is reported here) and starts the threads.
    pub fn start(files: &ModelFiles, options: &ServiceOptions) -> Result<ClassifierService> {
        let model_id = files.model_id()?;
        let (tx, rx) = crossbeam_channel::bounded::<Job>(options.queue.max(1));
        let cache = Arc::new(EmbeddingCache::new(options.cache_entries));
        let stats = Arc::new(ServiceStats::default());
        let (mut dim, mut feature_dim) = (0, 0);
        for i in 0..options.threads.max(1) {
            let encoder = Encoder::load(files, &options.encoder)?;
            dim = encoder.dim();
            feature_dim = encoder.feature_dim();
            let worker = Worker {
                encoder,
                rx: rx.clone(),
                cache: cache.clone(),
                stats: stats.clone(),
                max_batch: options.max_batch.max(1),
            };
            std::thread::Builder::new()
                .name(format!("switchyard-classify-{i}"))
                .spawn(move || worker.run())
                .map_err(|e| ClassifierError::Inference(format!("cannot start a thread: {e}")))?;
        }
        Ok(ClassifierService {
            tx,
            cache,
            stats,
            model_id,
            dim,
            feature_dim,
        })
    }

    /// sha256 of the encoder graph: policies compiled against another
    /// encoder carry vectors this one cannot compare with.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The sentence vector's length: the first `dim` numbers of every
    /// vector this service returns, what routes compare.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The whole vector's length (with end segments when asked for): what
    /// a label head reads.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    pub fn stats(&self) -> &ServiceStats {
        &self.stats
    }

    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    pub async fn embed(&self, window: &str) -> Result<Embedded> {
        let start = Instant::now();
        let vector = match self.lookup(window)? {
            Lookup::Hit(v) => return Ok(Embedded::cached(v, start)),
            Lookup::Queued(rx) => rx.await.map_err(|_| ClassifierError::Stopped)??,
        };
        Ok(Embedded::computed(vector, start))
    }

    /// For command-line tools and set-up code, not async request paths.
    pub fn embed_blocking(&self, window: &str) -> Result<Embedded> {
        let start = Instant::now();
        let vector = match self.lookup(window)? {
            Lookup::Hit(v) => return Ok(Embedded::cached(v, start)),
            Lookup::Queued(rx) => rx.blocking_recv().map_err(|_| ClassifierError::Stopped)??,
        };
        Ok(Embedded::computed(vector, start))
    }

    /// The cached vector, or a place in the queue for one.
    fn lookup(&self, window: &str) -> Result<Lookup> {
        let key = window_key(window);
        if let Some(vector) = self.cache.get(key) {
            self.stats.cache_hits.fetch_add(1, Relaxed);
            return Ok(Lookup::Hit(vector));
        }
        self.stats.cache_misses.fetch_add(1, Relaxed);
        self.submit(window, key).map(Lookup::Queued)
    }

    fn submit(&self, window: &str, key: u64) -> Result<Reply> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            text: window.to_string(),
            key,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.stats.refused.fetch_add(1, Relaxed);
                Err(ClassifierError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => Err(ClassifierError::Stopped),
        }
    }
}

struct Worker {
    encoder: Encoder,
    rx: Receiver<Job>,
    cache: Arc<EmbeddingCache>,
    stats: Arc<ServiceStats>,
    max_batch: usize,
}

impl Worker {
    fn run(mut self) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        while let Ok(first) = self.rx.recv() {
            jobs.push(first);
            while jobs.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.serve(&mut jobs);
        }
    }

    fn serve(&mut self, jobs: &mut Vec<Job>) {
        // A job queued twice (two requests, one conversation) may have been
        // answered by the batch before this one.
        let (hit, miss): (Vec<Job>, Vec<Job>) = jobs
            .drain(..)
            .partition(|j| self.cache.get(j.key).is_some());
        for job in hit {
            if let Some(v) = self.cache.get(job.key) {
                let _ = job.reply.send(Ok(v));
            }
        }
        if miss.is_empty() {
            return;
        }
        let texts: Vec<&str> = miss.iter().map(|j| j.text.as_str()).collect();
        let start = Instant::now();
        let result = self.encoder.embed(&texts);
        self.stats
            .inference_micros
            .fetch_add(start.elapsed().as_micros() as u64, Relaxed);
        self.stats.batches.fetch_add(1, Relaxed);
        self.stats
            .batched_prompts
            .fetch_add(miss.len() as u64, Relaxed);
        match result {
            Ok(vectors) => {
                for (job, v) in miss.into_iter().zip(vectors) {
                    let v: Arc<[f32]> = Arc::from(v);
                    self.cache.insert(job.key, v.clone());
                    let _ = job.reply.send(Ok(v));
                }
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, prompts = miss.len(), "classifier batch failed");
                let message = e.to_string();
                for job in miss {
                    let _ = job
                        .reply
                        .send(Err(ClassifierError::Inference(message.clone())));
                }
            }
        }
    }
}
