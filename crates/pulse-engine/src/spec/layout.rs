//! The names behind a profile's positions under one configuration. A profile keeps its window
//! counters, funnel attempts and segment memberships by position in the configuration: counter
//! `i` of a bucket counts metric `i`, an attempt names its funnel by index, bit `i` of the
//! memberships is segment `i`. That keeps it small and quick to update, and it means a stored
//! profile only makes sense under the configuration that wrote it. The layout names those
//! positions; the changelog stores it beside the profiles, and [`crate::customer::migration`] carries a
//! profile written under one layout to another.

use serde::{Deserialize, Serialize};

/// What each position of a profile stands for under one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The metrics a window bucket counts, in column order.
    pub metrics: Vec<String>,
    /// The funnels, in index order, with their number of steps.
    pub funnels: Vec<(String, u8)>,
    /// The segments, in bit order.
    pub segments: Vec<String>,
}

impl Layout {
    /// A stable fingerprint of the layout: FNV-1a over its names, so the same layout has the
    /// same id in every build and on every host.
    pub fn id(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (section, names) in [
            (
                b'm',
                self.metrics.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            (b's', self.segments.iter().map(String::as_str).collect()),
        ] {
            eat(&[section]);
            for n in names {
                eat(n.as_bytes());
                eat(&[0]);
            }
        }
        eat(b"f");
        for (name, steps) in &self.funnels {
            eat(name.as_bytes());
            eat(&[0, *steps]);
        }
        h
    }
}

/// The previous names of renamed entries, new name → old name, as the configuration says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renames {
    pub metrics: Vec<(String, String)>,
    pub funnels: Vec<(String, String)>,
    pub segments: Vec<(String, String)>,
}
