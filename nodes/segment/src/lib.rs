//! The `segment` node (being written).
