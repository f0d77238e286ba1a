//! Registries are `&[(name, description)]` tables (encoders, losses, miners,
//! samplers, optimizers...); this is what they share.

/// The names of a registry, comma-separated, for error hints.
pub(crate) fn names(registry: &[(&str, &str)]) -> String {
    registry.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}
