//! What operators write: the `[engine]` section and its analytics sections, as serde reads
//! them. The floor below everything else: the rest of the engine compiles or reads it.

pub mod analytics;
pub mod engine;
