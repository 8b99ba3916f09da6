//! Sessionization by an inactivity gap in event time. An explicit `session_start` always opens
//! a new session and `session_end` closes the current one; otherwise a session ends when the
//! customer is inactive for longer than the gap.

use crate::Millis;
use serde::{Deserialize, Serialize};

/// The customer's current (most recent) session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub start: Millis,
    pub last: Millis,
    /// False after `session_end`, or before the first event.
    pub open: bool,
}

/// How an event relates to the sessions seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// The event starts a new session (count it).
    Started,
    /// The event belongs to the current session.
    Continued,
    /// A late event from before the current session: it belonged to an earlier session that
    /// was already counted, so nothing changes.
    Earlier,
}

impl Session {
    /// Records an activity at `ts`; `explicit_start` / `explicit_end` for session events.
    pub fn touch(
        &mut self,
        ts: Millis,
        gap: Millis,
        explicit_start: bool,
        explicit_end: bool,
    ) -> Touch {
        let fresh = !self.open && self.start == 0 && self.last == 0;
        let touch = if fresh || explicit_start || !self.open || ts > self.last + gap {
            if !fresh && !explicit_start && ts < self.start {
                Touch::Earlier
            } else {
                *self = Session {
                    start: ts,
                    last: ts,
                    open: true,
                };
                Touch::Started
            }
        } else if ts < self.start - gap {
            Touch::Earlier
        } else {
            self.start = self.start.min(ts);
            self.last = self.last.max(ts);
            Touch::Continued
        };
        if explicit_end && touch != Touch::Earlier {
            self.open = false;
        }
        touch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Millis = 30 * 60_000;
    const T: Millis = 1_767_225_600_000;

    #[test]
    fn splits_on_the_inactivity_gap() {
        let mut s = Session::default();
        assert_eq!(s.touch(T, GAP, false, false), Touch::Started);
        assert_eq!(s.touch(T + GAP, GAP, false, false), Touch::Continued);
        // Exactly the gap after the last activity continues; one millisecond more does not.
        assert_eq!(s.touch(T + 2 * GAP + 1, GAP, false, false), Touch::Started);
        assert_eq!(s.start, T + 2 * GAP + 1);
    }

    #[test]
    fn explicit_start_and_end() {
        let mut s = Session::default();
        s.touch(T, GAP, false, false);
        assert_eq!(s.touch(T + 1000, GAP, true, false), Touch::Started);
        assert_eq!(s.touch(T + 2000, GAP, false, true), Touch::Continued);
        assert!(!s.open);
        assert_eq!(s.touch(T + 3000, GAP, false, false), Touch::Started);
    }

    #[test]
    fn late_events_extend_or_are_ignored() {
        let mut s = Session::default();
        s.touch(T, GAP, false, false);
        assert_eq!(s.touch(T - 60_000, GAP, false, false), Touch::Continued);
        assert_eq!(s.start, T - 60_000);
        assert_eq!(s.touch(T - 3 * GAP, GAP, false, false), Touch::Earlier);
        assert_eq!(s.start, T - 60_000);
    }
}
