//! `policyc`: validate, compile and inspect Switchyard policies.

use clap::{Parser, Subcommand};
use policy::{snapshot, Diagnostic, Snapshot};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "policyc", version, about = "Switchyard policy compiler")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a YAML policy; print every problem with file:line:column.
    Check { file: PathBuf },
    /// Compile a YAML policy into a snapshot the engine loads zero-copy.
    Compile {
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Classifier model cache, for policies with utterance routes
        /// (default: SWITCHYARD_MODEL_DIR, else .cache/models).
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// Print a human summary of a snapshot (or of a YAML policy).
    Inspect { file: PathBuf },
    /// Mint a new client key: prints the key once, and its hash for the policy.
    MintKey {
        #[arg(long, default_value = "my-key")]
        name: String,
    },
    /// Print a new key for sealing published snapshots (64 hex digits).
    Keygen,
    /// Compile (a YAML policy) or take (a snapshot), seal it and publish it
    /// to Redis, where replicas started with `--policy-from-redis` load it.
    /// Exit status: 0 published, 1 the policy is invalid (nothing
    /// published), 2 it could not be published (key, Redis).
    Publish {
        file: PathBuf,
        /// Redis URL (default: the REDIS_URL environment variable).
        #[arg(long)]
        redis: Option<String>,
        /// A file holding the sealing key.
        #[arg(long, conflicts_with = "key_env")]
        key_file: Option<PathBuf>,
        /// An environment variable holding the sealing key.
        #[arg(long, default_value = "SWITCHYARD_POLICY_KEY")]
        key_env: String,
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
}

/// Exit status of `publish` when the policy is fine but could not be sent.
const NOT_PUBLISHED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { file } => check(&file),
        Command::Compile {
            file,
            output,
            model_dir,
        } => compile(&file, &output, model_dir.as_deref()),
        Command::Inspect { file } => inspect(&file),
        Command::MintKey { name } => mint_key(&name),
        Command::Keygen => policy::sealed::SealKey::generate_hex()
            .map(|k| println!("{k}"))
            .map_err(|e| e.to_string()),
        Command::Publish {
            file,
            redis,
            key_file,
            key_env,
            model_dir,
        } => {
            return match publish(
                &file,
                redis,
                key_file.as_deref(),
                &key_env,
                model_dir.as_deref(),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err((code, e)) => {
                    eprintln!("{e}");
                    ExitCode::from(code)
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn check(file: &Path) -> Result<(), String> {
    let compiled = policy::compile_file(file).map_err(|e| e.to_string())?;
    print_warnings(&compiled.warnings);
    let p = &compiled.policy;
    let bytes = snapshot::encode(p, 0).map_err(|e| e.to_string())?;
    let snap = Snapshot::from_bytes(&bytes).map_err(|e| e.to_string())?;
    println!(
        "ok: {} — {} providers, {} models, {} client keys, content hash {}",
        file.display(),
        p.providers.len(),
        p.aliases.len(),
        p.client_keys.len(),
        snap.header().short_hash()
    );
    Ok(())
}

/// A YAML policy compiled (routes embedded), or a snapshot file as is;
/// validated either way.
fn snapshot_bytes(file: &Path, model_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if snapshot::looks_like_snapshot(&raw) {
        Snapshot::from_bytes(&raw).map_err(|e| e.to_string())?;
        return Ok(raw);
    }
    compile_embedded(file, model_dir)
}

/// A YAML policy compiled, its route utterances embedded, as snapshot bytes.
fn compile_embedded(file: &Path, model_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut compiled = policy::compile_file(file).map_err(|e| e.to_string())?;
    print_warnings(&compiled.warnings);
    if policy::needs_embedding(&compiled.policy) {
        let mut encoder = route_encoder(model_dir)?;
        policy::embed_routes(&mut compiled.policy, &mut encoder).map_err(|e| e.to_string())?;
        let routes = &compiled.policy.routing.routes;
        println!(
            "embedded {} utterances of {} routes with encoder {}…",
            routes
                .iter()
                .map(|r| r.utterances.len() + r.negatives.len())
                .sum::<usize>(),
            routes.len(),
            &encoder.model_id[..12.min(encoder.model_id.len())]
        );
    }
    snapshot::encode(&compiled.policy, snapshot::now_unix()).map_err(|e| e.to_string())
}

fn publish(
    file: &Path,
    redis: Option<String>,
    key_file: Option<&Path>,
    key_env: &str,
    model_dir: Option<&Path>,
) -> Result<(), (u8, String)> {
    let bytes = snapshot_bytes(file, model_dir).map_err(|e| (1, e))?;
    let hash = Snapshot::from_bytes(&bytes)
        .map_err(|e| (1, e.to_string()))?
        .header()
        .hash_hex();
    let fail = |e: String| (NOT_PUBLISHED, e);
    let key = match key_file {
        Some(path) => policy::sealed::SealKey::from_file(path),
        None => policy::sealed::SealKey::from_env(key_env),
    }
    .map_err(|e| fail(e.to_string()))?;
    let sealed = key.seal(&bytes).map_err(|e| fail(e.to_string()))?;
    let url = redis
        .or_else(|| std::env::var("REDIS_URL").ok())
        .ok_or_else(|| fail("no Redis: pass --redis or set REDIS_URL".into()))?;
    // Redis errors can quote the URL (and its password): only their kind.
    let client = redis::Client::open(url.as_str())
        .map_err(|e| fail(format!("not a usable Redis URL ({:?})", e.kind())))?;
    let mut con = client
        .get_connection_with_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| fail(format!("cannot reach Redis ({:?})", e.kind())))?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    redis::cmd("HSET")
        .arg(policy::sealed::PUBLISHED_KEY)
        .arg("hash")
        .arg(&hash)
        .arg("sealed")
        .arg(&sealed)
        .arg("at")
        .arg(at)
        .query::<()>(&mut con)
        .map_err(|e| fail(format!("Redis refused the snapshot ({:?})", e.kind())))?;
    println!(
        "published {} (content hash {hash}, {} bytes sealed)",
        file.display(),
        sealed.len()
    );
    Ok(())
}

fn compile(file: &Path, output: &Path, model_dir: Option<&Path>) -> Result<(), String> {
    let bytes = compile_embedded(file, model_dir)?;
    let snap = Snapshot::from_bytes(&bytes).map_err(|e| e.to_string())?;
    write_atomically(output, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    println!(
        "wrote {} ({} bytes, content hash {})",
        output.display(),
        bytes.len(),
        snap.header().hash_hex()
    );
    Ok(())
}

fn print_routing(p: &policy::ArchivedCompiledPolicy) {
    let r = &p.routing;
    if r.routes.is_empty() && r.routers.is_empty() {
        return;
    }
    let encoder = r.classifier.encoder.as_str();
    println!(
        "classifier routes ({}), vectors from encoder {}",
        r.routes.len(),
        if encoder.is_empty() {
            "none (not embedded)"
        } else {
            &encoder[..12.min(encoder.len())]
        }
    );
    for route in r.routes.iter() {
        println!(
            "  {:<16} threshold {:.2}  {} utterances, {} negatives",
            route.name.as_str(),
            route.threshold.to_native(),
            route.utterances.len(),
            route.negatives.len()
        );
    }
    let alias = |i: u32| p.aliases.get(i as usize).map_or("?", |a| a.name.as_str());
    println!("routers ({})", r.routers.len());
    for router in r.routers.iter() {
        println!("  {}", router.name.as_str());
        for rule in router.rules.iter() {
            let mut when = Vec::new();
            if let Some(l) = rule.label.as_ref() {
                let name = policy::TASK_LABELS
                    .get(l.to_native() as usize)
                    .unwrap_or(&"?");
                when.push(format!("label={name}"));
            }
            if let Some(i) = rule.route.as_ref() {
                let name = r
                    .routes
                    .get(i.to_native() as usize)
                    .map_or("?", |x| x.name.as_str());
                when.push(format!("route={name}"));
            }
            if let Some(s) = rule.min_score.as_ref() {
                when.push(format!("min_score={:.2}", s.to_native()));
            }
            if let Some(b) = rule.input_tokens.as_ref() {
                when.push(format!(
                    "input_tokens {} {}",
                    b.comparison.symbol(),
                    b.tokens.to_native()
                ));
            }
            if let Some(m) = rule.modality.as_ref() {
                when.push(format!("modality={}", m.as_str()));
            }
            if !rule.tiers.is_empty() {
                let tiers: Vec<&str> = rule.tiers.iter().map(|t| t.as_str()).collect();
                when.push(format!("tier in [{}]", tiers.join(", ")));
            }
            println!(
                "    {:<16} {:<40} -> {}",
                rule.name.as_str(),
                when.join(", "),
                alias(rule.alias.to_native())
            );
        }
        println!(
            "    {:<16} {:<40} -> {}",
            "default",
            "",
            alias(router.default_alias.to_native())
        );
    }
}

/// The engine's encoder, for route utterances. Its absence is an error
/// here (the engine could not match such routes either).
fn route_encoder(model_dir: Option<&Path>) -> Result<classifier::RouteEncoder, String> {
    let files = match model_dir {
        Some(dir) => classifier::ModelFiles::in_dir(dir),
        None => classifier::ModelFiles::from_env(),
    };
    let cant = |e: classifier::ClassifierError| {
        format!("classifier.routes needs the encoder to embed its utterances: {e}")
    };
    let encoder =
        classifier::Encoder::load(&files, &classifier::EncoderOptions::default()).map_err(cant)?;
    let model_id = files.model_id().map_err(cant)?;
    Ok(classifier::RouteEncoder { encoder, model_id })
}

/// Write beside the target and rename over it, so a watching engine never
/// sees a half-written snapshot. Owner-only: it holds upstream keys.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn inspect(file: &Path) -> Result<(), String> {
    let loaded = policy::load_path(file).map_err(|e| e.to_string())?;
    let snap = loaded.snapshot;
    let h = snap.header();
    let p = snap.policy();
    println!("snapshot      {}", file.display());
    println!("format        v{}", h.format_version);
    println!("content hash  {}", h.hash_hex());
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(h.compiled_at_unix);
    println!("compiled at   {}", humantime::format_rfc3339_seconds(when));
    println!("source        {}", p.source);
    println!(
        "listener      {} (threads: {}, max body: {} bytes, upstream CA: {})",
        p.listener.address,
        match p.listener.threads.to_native() {
            0 => "one per core".to_string(),
            n => n.to_string(),
        },
        p.listener.max_body_bytes,
        p.listener.upstream_ca
    );
    println!("providers ({})", p.providers.len());
    for pr in p.providers.iter() {
        let mut tiers: Vec<String> = Vec::new();
        for k in pr.keys.iter() {
            // Key names and tiers only: never the secret.
            tiers.push(format!("{} (tier {})", k.name, k.tier));
        }
        println!(
            "  {:<14} {:<17} {}{}  keys: {}",
            pr.name.as_str(),
            pr.kind.native().as_str(),
            pr.base_url,
            if pr.allow_direct { "  [direct]" } else { "" },
            if tiers.is_empty() {
                "none".to_string()
            } else {
                tiers.join(", ")
            }
        );
    }
    println!("models ({})", p.aliases.len());
    for a in p.aliases.iter() {
        let targets: Vec<String> = a
            .targets
            .iter()
            .map(|t| {
                let provider = p
                    .provider_at(t.provider.to_native())
                    .map(|x| x.name.as_str())
                    .unwrap_or("?");
                format!("{provider}/{}", t.model)
            })
            .collect();
        println!("  {:<24} -> {}", a.name.as_str(), targets.join(" | "));
    }
    print_routing(p);
    println!("client keys ({})", p.client_keys.len());
    for k in p.client_keys.iter() {
        let models: Vec<&str> = k.models.iter().map(|m| m.as_str()).collect();
        println!(
            "  {:<16} sha256:{}…  models: {}",
            k.name.as_str(),
            hex::encode(&k.sha256[..6]),
            models.join(", ")
        );
    }
    Ok(())
}

fn mint_key(name: &str) -> Result<(), String> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| format!("no OS randomness: {e}"))?;
    let key = policy::keys::mint(random);
    let hash = hex::encode(policy::keys::sha256(&key));
    println!("key (shown once, store it now): {key}");
    println!();
    println!("client_keys:");
    println!("  - name: {name}");
    println!("    key_sha256: {hash}");
    Ok(())
}
