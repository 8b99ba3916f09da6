//! Segment rules: the compiled typed trees that run the common rules in nanoseconds
//! ([`fast`]), and the compile step and CEL interpreter that run everything else ([`cel`],
//! which compiles to `fast` where it can, so it imports `fast` and not the other way).

pub mod cel;
pub mod fast;
