//! The `capture` node (being written).
