//! The compiled engine: the configuration's numbers ([`EngineSpec`]) and its segment rules
//! ([`Segments`]), compiled once at startup and shared by every partition.
//!
//! The rules are kept beside the spec rather than in it because they are compiled against it
//! (a rule names metrics, windows and funnels the spec resolved): with the rules inside, the
//! spec would be both the bottom of the engine and its top.

use crate::config::engine::EngineConfig;
use crate::rules::cel::{SegmentSpec, Segments};
use crate::spec::{EngineSpec, SpecError};

/// Everything a partition reads of the configuration.
#[derive(Debug)]
pub struct Engine {
    pub spec: EngineSpec,
    pub rules: Segments,
}

impl Engine {
    /// Compiles `[engine]`. Every problem of the spec is reported at once; the rules are
    /// compiled (each of their problems reported too) once the spec they name is valid.
    pub fn compile(cfg: &EngineConfig) -> Result<Self, Vec<SpecError>> {
        let spec = EngineSpec::compile(cfg)?;
        let rules = Segments::compile(&cfg.segments, &spec)?;
        Ok(Self { spec, rules })
    }

    /// The compiled segment rules, by index (a membership's bit).
    pub fn segments(&self) -> &[SegmentSpec] {
        &self.rules.rules
    }
}
