//! Quirks of OpenAI-compatible servers, as data. A provider names a preset,
//! adjusts any field, or writes its own; the engine applies the result.

/// `(preset, max_tokens_field, drop_params, rename_params, reasoning_field, strip_fields)`
type Preset = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static [&'static str],
);

/// Known servers. Sources: `shared/conformance/openai_compatible/` (Ollama,
/// vLLM) and the providers' API references (DeepSeek, Mistral).
pub const PRESETS: &[Preset] = &[
    (
        "vllm",
        "",
        &[],
        &[],
        "reasoning",
        &[
            "stop_reason",
            "token_ids",
            "routed_experts",
            "prompt_logprobs",
            "prompt_token_ids",
            "prompt_text",
            "kv_transfer_params",
            "metrics",
        ],
    ),
    ("ollama", "max_tokens", &[], &[], "reasoning", &[]),
    (
        "deepseek",
        "max_tokens",
        &["parallel_tool_calls", "service_tier", "store"],
        &[],
        "",
        &[],
    ),
    (
        "mistral",
        "max_tokens",
        &["parallel_tool_calls", "service_tier", "store", "logit_bias"],
        &[("seed", "random_seed")],
        "",
        &[],
    ),
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.0 == name)
}
